"""extend=true: a run that completed its whole budget continues to a larger one, as if trained there in one go."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from grokking.validation import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# log_every=4 and 15 epochs: the last epoch (14) is logged only for being the last
TINY = ["dataset.modulus=23", "model.width=32", "log_every=4", "optimizer.lr=0.01", "checkpoint_every=0"]
RULE = ["stop_when.metric=train_acc", "stop_when.threshold=0.5", "stop_when.patience=1"]


def test_an_extended_run_logs_exactly_what_one_run_to_the_new_budget_logs(run, tmp_path):
    once, once_dir = run([*TINY, "epochs=30"])
    out = tmp_path / "extended"
    short, _ = run([*TINY, "epochs=15"], out)
    assert short["status"] == "completed" and 14 in set(pd.read_csv(out / "metrics.csv").epoch)
    extended, _ = run([*TINY, "epochs=30", "extend=true"], out)
    assert extended["status"] == "completed" and extended["epoch"] == extended["epochs"] == 30
    # every row of the one-go run, bit for bit, and the row epoch 14 logged for being the last (kept:
    # nothing a run has logged is dropped)
    rows = pd.read_csv(out / "metrics.csv")
    assert 14 in set(rows.epoch) and 14 not in set(pd.read_csv(once_dir / "metrics.csv").epoch)
    pd.testing.assert_frame_equal(rows[rows.epoch != 14].reset_index(drop=True), pd.read_csv(once_dir / "metrics.csv"))
    assert extended["per_seed"]["0"]["final"] == once["per_seed"]["0"]["final"]
    assert [s["from_epoch"] for s in extended["stretches"]] == [0, 15]
    # each stretch records the commit that trained it, read as it started (here: this checkout's)
    assert [s["git_commit"] for s in extended["stretches"]] == [extended["git_commit"]] * 2
    assert "epochs: 30" in (out / "config.yaml").read_text()


def test_while_a_run_is_extended_its_config_still_describes_its_summary(run, tmp_path, monkeypatch):
    import grokking.train

    out = tmp_path / "r"
    run([*TINY, "epochs=15"], out)
    seen = []
    append = grokking.train.MetricsWriter.append

    def spy(self, new_rows):
        seen.append(
            (
                (out / "config.yaml").read_text().count("epochs: 15"),
                json.loads((out / "summary.json").read_text())["epochs"],
            )
        )
        return append(self, new_rows)

    monkeypatch.setattr(grokking.train.MetricsWriter, "append", spy)
    run([*TINY, "epochs=30", "extend=true"], out)
    assert seen and set(seen) == {(1, 15)}  # the old budget in both while the extension runs
    assert "epochs: 30" in (out / "config.yaml").read_text()  # and the new one in both once it finished


def test_a_finished_run_is_not_continued_without_extend(run, tmp_path):
    out = tmp_path / "r"
    run([*TINY, "epochs=15"], out)
    with pytest.raises(ConfigError, match="extend=true with more epochs"):
        run([*TINY, "epochs=30"], out)
    assert json.loads((out / "summary.json").read_text())["epoch"] == 15  # untouched


@pytest.mark.parametrize(
    "first, second, message",
    [
        (["epochs=15"], ["epochs=15"], "has already trained 15 epochs; pass epochs > 15 to extend it"),
        ([*RULE, "epochs=400"], [*RULE, "epochs=800"], "stopped early at epoch"),
        (["epochs=15", "optimizer.lr=1e30"], ["epochs=30", "optimizer.lr=1e30"], "holds a diverged run"),
    ],
)
def test_extend_refuses_a_run_with_nothing_to_extend_in_one_line(run, tmp_path, first, second, message):
    out = tmp_path / "r"
    summary, _ = run([*TINY, *first], out)
    before = (out / "metrics.csv").read_text()
    with pytest.raises(ConfigError) as err:
        run([*TINY, *second, "extend=true"], out)
    assert str(err.value).startswith(f"extend=true: {out}") and message in str(err.value)
    assert "\n" not in str(err.value) and (out / "metrics.csv").read_text() == before


def test_a_sweep_with_extend_continues_budget_runs_and_skips_runs_that_met_their_rule(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    sweep = [
        "-m",
        *TINY,
        *RULE[1:],
        "stop_when.metric=train_acc,null",  # job 0 stops early (≈ epoch 170), job 1 trains its budget
        f"hydra.sweep.dir={tmp_path}",
    ]
    first = subprocess.run([sys.executable, "train.py", *sweep, "epochs=200", "device=cpu"], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    stopped = json.loads((tmp_path / "0" / "summary.json").read_text())
    budget = json.loads((tmp_path / "1" / "summary.json").read_text())
    assert stopped["stopped_early"] is not None and budget["stopped_early"] is None and budget["epoch"] == 200
    res = subprocess.run([sys.executable, "train.py", *sweep, "epochs=220", "extend=true", "device=cpu"], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"skipping {tmp_path / '0'}" in res.stderr and f"resuming {tmp_path / '1'} from epoch 200" in res.stderr
    assert json.loads((tmp_path / "0" / "summary.json").read_text()) == stopped
    assert json.loads((tmp_path / "1" / "summary.json").read_text())["epochs"] == 220
