"""`scripts/recheck.py` holds committed runs against re-runs of the same replicate: which claims it
re-checks, what counts as a changed verdict, its report and its errors."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from reproduction.recheck import RECHECKS, main, recheck, report
from reproduction.results import RESULTS

FIG14 = RESULTS / "replicates" / "1" / "fig14"


@pytest.fixture
def rerun(tmp_path):
    """Re-runs of Fig. 14's replicate 1 that are exact copies of the committed ones."""
    if not FIG14.is_dir():
        pytest.skip("the committed replicate 1 of Fig. 14 is not in results/")
    shutil.copytree(FIG14, tmp_path / "replicates" / "1" / "fig14")
    return tmp_path


def test_identical_re_runs_keep_every_verdict_of_the_figure_and_only_its_claims(rerun):
    rows = recheck(rerun)
    assert {r.claim.figure for r in rows} == {"Fig. 14"} and len(rows) == 4
    assert all(r.same and r.same_alone and r.change in ("+0", "+0 points", "—") for r in rows)
    assert all(r.pooled.status == r.pooled_rerun.status for r in rows)


def test_a_re_run_that_ends_elsewhere_is_reported_changed(rerun, tmp_path):
    path = rerun / "replicates" / "1" / "fig14" / "no_wd" / "metrics.csv"
    df = pd.read_csv(path)
    df.loc[df.epoch == df.epoch.max(), "test_acc"] = 1.0  # no weight decay now generalizes
    df.to_csv(path, index=False)
    out = tmp_path / "RECHECK.md"
    assert main([str(rerun), "--out", str(out)]) == 0
    text = out.read_text()
    assert "**4 claims re-checked: the verdict over the replicates is kept on 3 and changes on 1;" in text
    assert "the re-run alone is judged otherwise than the committed run on 2.**" in text
    low = next(line for line in text.splitlines() if "test accuracy stays low" in line)
    assert "41.8 % (holds) | 100.0 % (**deviates**) | +58.2 points | holds → within seed spread **changed** |" in low
    jump = next(line for line in text.splitlines() if "test accuracy jumps" in line)
    assert "(**deviates**)" in jump and jump.endswith("| holds → holds |")


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/absent"], "absent is not a folder of re-runs"),
        (["{tmp}"], "holds no run of replicate 1 that a claim reads"),
        (["{tmp}", "--replicate", "-1"], "--replicate -1 is not valid"),
        (["{tmp}", "--replicate", "99"], "has no replicate 99"),
    ],
)
def test_errors_are_one_line_naming_the_bad_value(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.parametrize("folder, index", RECHECKS.items())
def test_the_committed_reports_are_what_the_committed_runs_give(folder, index):
    """Fails when a run changed and `make figures` was not run to rewrite the report."""
    root = RESULTS / folder
    if not root.is_dir():
        pytest.skip(f"results/{folder} is not committed")
    fresh = report(recheck(root, index), root, index)
    assert (root / "RECHECK.md").read_text(encoding="utf-8") == fresh, f"{folder}/RECHECK.md is stale"
