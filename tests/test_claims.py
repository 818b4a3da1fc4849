"""The claims framework on synthetic results: a claim that holds, one that deviates, one missing."""

import importlib.util
import json
from pathlib import Path

import pandas as pd

from grokking.claims import Claim, at_least, evaluate, report, summary_line
from grokking.results import final_mean, first_epoch

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def write_run(root: Path, figure: str, run: str, test_acc: list[float]) -> None:
    """A two-seed run whose test accuracy follows ``test_acc`` at epochs 0, 10, 20, ..."""
    out = root / figure / run
    out.mkdir(parents=True)
    rows = [
        {"epoch": 10 * i, "seed": seed, "train_acc": 1.0, "test_acc": acc}
        for seed in (0, 1)
        for i, acc in enumerate(test_acc)
    ]
    pd.DataFrame(rows).to_csv(out / "metrics.csv", index=False)
    final = {"test_acc": test_acc[-1], "train_acc": 1.0}
    summary = {"status": "completed", "per_seed": {str(s): {"final": final, "epoch_sc_50": None} for s in (0, 1)}}
    (out / "summary.json").write_text(json.dumps(summary))


def final_test(figure: str, run: str):
    return lambda r: 100 * final_mean(figure, run, "test_acc", r)


def test_hold_deviate_missing(tmp_path):
    write_run(tmp_path, "figA", "good", [0.0, 0.5, 0.99])
    write_run(tmp_path, "figA", "bad", [0.0, 0.1, 0.2])
    claims = [
        Claim("Fig. A", "good run generalizes", "≈ 100 %", final_test("figA", "good"), at_least(95), "≥ 95 %"),
        Claim("Fig. A", "bad run generalizes", "≈ 100 %", final_test("figA", "bad"), at_least(95), "≥ 95 %"),
        Claim("Fig. A", "absent run generalizes", "≈ 100 %", final_test("figA", "absent"), at_least(95), "≥ 95 %"),
    ]
    verdicts = [evaluate(c, tmp_path) for c in claims]
    assert [v.status for v in verdicts] == ["holds", "deviates", "missing"]
    assert verdicts[0].value == 99.0 and verdicts[1].value == 20.0 and verdicts[2].value is None
    assert verdicts[2].ours == "—"
    assert summary_line(verdicts) == "3 claims: 1 hold, 1 deviate, 1 missing"
    assert summary_line(verdicts[:2]) == "2 claims: 1 hold, 1 deviate"
    text = report(verdicts)
    assert text.rstrip().endswith("3 claims: 1 hold, 1 deviate, 1 missing")
    assert "| Fig. A | bad run generalizes | ≈ 100 % | 20 | ≥ 95 % | deviates |" in text


def test_never_reached_threshold_deviates(tmp_path):
    """A measure returning None (e.g. a threshold never reached) deviates rather than passing."""
    write_run(tmp_path, "figA", "bad", [0.0, 0.1, 0.2])
    claim = Claim(
        "Fig. A", "epoch of 95 %", "≈ 20", lambda r: first_epoch("figA", "bad", "test_acc", 0.95, r), at_least(0), ""
    )
    assert evaluate(claim, tmp_path).status == "deviates"


def test_main_text_claims_on_an_empty_results_folder_are_missing(tmp_path):
    spec = importlib.util.spec_from_file_location("claims_main", SCRIPTS / "claims_main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(module.CLAIMS) > 40
    assert {evaluate(c, tmp_path).status for c in module.CLAIMS} == {"missing"}


def test_running_run_is_missing(tmp_path):
    """A run whose summary does not say completed (still training) does not count yet."""
    spec = importlib.util.spec_from_file_location("claims_main", SCRIPTS / "claims_main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    write_run(tmp_path, "fig4", "sparse_parity", [0.5, 0.99, 1.0])
    summary = tmp_path / "fig4" / "sparse_parity" / "summary.json"
    claim = next(c for c in module.CLAIMS if "sparse parity: final test" in c.claim)
    assert evaluate(claim, tmp_path).status == "holds"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "running"}))
    assert evaluate(claim, tmp_path).status == "missing"
