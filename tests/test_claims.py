"""The claims framework on synthetic results (a claim that holds, one that deviates, one missing)
and the claims table: every row loads, a bad row fails with one line, a new claim is one row."""

import json
import runpy
from pathlib import Path

import pandas as pd
import pytest
import yaml

import reproduction.claims
import reproduction.manifest
from reproduction.claims import CHECKS, Claim, ClaimsTableError, at_least, evaluate, load_claims, report, summary_line
from reproduction.manifest import experiments
from reproduction.measures import MEASURES
from reproduction.results import final_mean, first_epoch

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


def test_every_claim_on_an_empty_results_folder_is_missing(tmp_path):
    claims = load_claims()
    assert len(claims) > 100
    assert {evaluate(c, tmp_path).status for c in claims} == {"missing"}


def test_running_run_is_missing(tmp_path):
    """A run whose summary does not say completed (still training) does not count yet."""
    write_run(tmp_path, "fig4", "sparse_parity", [0.5, 0.99, 1.0])
    summary = tmp_path / "fig4" / "sparse_parity" / "summary.json"
    claim = next(c for c in load_claims() if "sparse parity: final test" in c.claim)
    assert evaluate(claim, tmp_path).status == "holds"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "running"}))
    assert evaluate(claim, tmp_path).status == "missing"


def test_every_row_of_the_table_loads_and_names_a_registered_measure_and_check():
    rows = [(exp, row) for exp in experiments().values() for row in exp.claims]
    claims = load_claims()
    assert len(claims) == len(rows)
    for (exp, row), claim in zip(rows, claims, strict=True):
        assert row["measure"] in MEASURES
        assert list(row["check"]) and list(row["check"])[0] in CHECKS
        expected = (row.get("figure", exp.figure), row["claim"], row.get("paper", "—"))
        assert (claim.figure, claim.claim, claim.paper) == expected
    assert len({(c.figure, c.claim) for c in claims}) == len(claims), "two rows state the same claim"


def write_table(path: Path, **fields) -> Path:
    row = {
        "figure": "Fig. A",
        "claim": "good run generalizes",
        "paper": "≈ 100 %",
        "measure": "pct_final",
        "args": ["figA", "good"],
        "check": {"approx": [100, 100, 10]},
        "tolerance": "≥ 90 %",
        "fmt": "{:.1f} %",
        **fields,
    }
    path.write_text(yaml.safe_dump([{k: v for k, v in row.items() if v is not None}], allow_unicode=True))
    return path


def test_a_new_claim_is_one_row(tmp_path):
    write_run(tmp_path / "results", "figA", "good", [0.0, 0.5, 0.99])
    [claim] = load_claims(write_table(tmp_path / "claims.yaml"))
    verdict = evaluate(claim, tmp_path / "results")
    assert (verdict.status, verdict.value, verdict.ours) == ("holds", 99.0, "99.0 %")
    assert "| Fig. A | good run generalizes | ≈ 100 % | 99.0 % | ≥ 90 % | holds | 1 of 1 | holds / holds |" in report(
        [verdict]
    )


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"measure": "pct_finale"}, "claims.yaml row 1: unknown measure 'pct_finale'; choose one of: "),
        (
            {"check": {"at_lest": 95}},
            "claims.yaml row 1: unknown check 'at_lest'; choose one of: approx, approx_rel, at_least, ",
        ),
        ({"tolerance": None}, "claims.yaml row 1: missing field tolerance"),
        (
            {"args": ["figA"]},
            "claims.yaml row 1: measure pct_final(figure, run, column='test_acc'): missing a required argument: 'run'",
        ),
        ({"check": {"within": "1e4"}}, "claims.yaml row 1: check 'within' takes numbers, not ['1e4']"),
        (
            {"check": {"at_least": 95}},
            "claims.yaml row 1: the paper's value '≈ 100 %' is approximate: check it with approx or approx_rel",
        ),
        ({"categorical": "yes"}, "claims.yaml row 1: categorical must be true or false, not 'yes'"),
    ],
)
def test_a_bad_row_fails_with_one_line_naming_it(tmp_path, fields, error):
    with pytest.raises(ClaimsTableError) as err:
        load_claims(write_table(tmp_path / "claims.yaml", **fields))
    assert str(err.value).startswith(error) and "\n" not in str(err.value)


def write_manifest(folder: Path, name: str = "figA", **fields) -> Path:
    """A manifest with one run and the row of :func:`write_table` (``fields`` change it) as its claim."""
    folder.mkdir(parents=True, exist_ok=True)
    [row] = yaml.safe_load(write_table(folder / "rows.yml", **fields).read_text(encoding="utf-8"))
    manifest = {"title": "a test experiment", "runs": {"good": ["experiment=smoke"]}, "claims": [row]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    return path


def test_claims_script_says_error_and_the_row(tmp_path, monkeypatch):
    monkeypatch.setattr(
        reproduction.manifest, "FOLDERS", [write_manifest(tmp_path / "experiments", measure="nope").parent]
    )
    monkeypatch.setattr("sys.argv", ["claims.py", "--results", str(tmp_path)])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(SCRIPTS / "claims.py"), run_name="__main__")
    assert str(exit.value.code).startswith("error: figA.yaml claims row 1: unknown measure 'nope'; choose one of: ")
    assert "pct_final" in str(exit.value.code) and not (tmp_path / "CLAIMS.md").exists()


def test_a_measure_name_means_one_measure():
    from reproduction.measures import measure

    with pytest.raises(ValueError, match="measure=pct_at is registered already"):
        measure("pct_at")(lambda: None)
    assert "pct_at" in MEASURES and MEASURES["pct_at"].__name__ == "pct_at"


def test_a_manifest_claim_defaults_its_figure_and_paper_and_names_its_file_and_row(tmp_path):
    """A user's own experiment: the row needs no ``figure`` (the manifest's name) and no ``paper``
    value (its verdict is against its own check); an error names the manifest and the row."""
    write_run(tmp_path / "results", "figA", "good", [0.0, 0.5, 0.99])
    [claim] = load_claims(write_manifest(tmp_path / "ok", figure=None, paper=None))
    assert (claim.figure, claim.paper) == ("figA", "—")
    assert evaluate(claim, tmp_path / "results").status == "holds"
    with pytest.raises(ClaimsTableError, match=r"^figA.yaml claims row 1: check 'within' takes numbers"):
        load_claims(write_manifest(tmp_path / "bad", check={"within": "1e4"}))
