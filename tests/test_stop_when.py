"""The stopping rule (stop_when): stops, says why, resumes, never stops a run that has not met it."""

import pandas as pd
import pytest
from omegaconf import OmegaConf

from grokking.cli import compose
from grokking.config import StopWhenConfig
from grokking.train import stop_rule_met
from grokking.validation import ConfigError, validate

TINY = ["dataset.modulus=23", "log_every=2", "optimizer.lr=0.01", "device=cpu"]
RULE = ["stop_when.metric=train_acc", "stop_when.threshold=0.9", "stop_when.patience=3"]


def rows(values, seeds=(0,)):
    return [{"epoch": 2 * i, "seed": s, "test_acc": v[k]} for i, v in enumerate(values) for k, s in enumerate(seeds)]


def test_rule_needs_the_last_patience_rows_of_every_replica():
    rule = StopWhenConfig(metric="test_acc", threshold=0.99, patience=3)
    assert stop_rule_met(rows([[0.5], [0.99], [1.0], [0.995]]), 1, rule)
    assert not stop_rule_met(rows([[0.99], [1.0], [0.98], [1.0], [1.0]]), 1, rule)  # streak broken
    assert not stop_rule_met(rows([[1.0], [1.0]]), 1, rule)  # too few logged epochs
    both = rows([[1.0, 1.0], [1.0, 0.9], [1.0, 1.0]], seeds=(0, 1))
    assert not stop_rule_met(both, 2, rule)  # replica 1 has not held it for 3 epochs
    assert stop_rule_met(both + rows([[1.0, 1.0]], seeds=(0, 1)), 2, StopWhenConfig("test_acc", 0.99, 2))


def test_a_run_stops_once_the_rule_holds_and_records_why(run):
    summary, out = run([*TINY, *RULE, "epochs=400"])
    assert summary["status"] == "completed"
    stop = summary["stopped_early"]
    assert stop["reason"] == "train_acc >= 0.9 on 3 consecutive logged epochs"
    m = pd.read_csv(out / "metrics.csv")
    assert m.epoch.iloc[-1] == stop["epoch"] and summary["epoch"] == stop["epoch"] + 1 < 400
    assert (m.train_acc.iloc[-3:] >= 0.9).all() and not (m.train_acc.iloc[-4:] >= 0.9).all()
    with pytest.raises(ConfigError, match="completed run"):  # a run that stopped early stays completed
        run([*TINY, *RULE, "epochs=400"], out)


def test_a_run_that_never_meets_the_rule_trains_every_epoch(run):
    summary, out = run([*TINY, "stop_when.metric=test_acc", "stop_when.threshold=1.0", "epochs=20"])
    assert summary["status"] == "completed" and summary["epoch"] == 20 and summary["stopped_early"] is None
    assert pd.read_csv(out / "metrics.csv").epoch.iloc[-1] == 19
    assert all(s["epoch_test_acc_99"] is None for s in summary["per_seed"].values())


def test_batched_seeds_stop_only_when_every_replica_meets_it(run):
    summary, out = run([*TINY, *RULE, "epochs=400", "seeds=[0,1,2]"])
    m = pd.read_csv(out / "metrics.csv")
    last = m[m.epoch == summary["stopped_early"]["epoch"]]
    assert len(last) == 3 and (last.train_acc >= 0.9).all()
    first = {s: g[g.train_acc >= 0.9].epoch.min() for s, g in m.groupby("seed")}
    assert summary["stopped_early"]["epoch"] >= max(first.values()) + 4  # the slowest replica held it 3 times


def test_a_resumed_run_continues_and_stops_where_an_uninterrupted_run_does(run, tmp_path):
    full, full_dir = run([*TINY, *RULE, "epochs=400"])
    stop_epoch = full["stopped_early"]["epoch"]
    out = tmp_path / "resumed"
    # a budget that ends after the logged epoch before the stop (the last epoch is always logged):
    # the streak is cut in the middle and must be picked up from the checkpoint's rows
    first, _ = run([*TINY, *RULE, f"epochs={stop_epoch - 1}", "checkpoint_every=0"], out)
    assert first["stopped_early"] is None and first["epoch"] == stop_epoch - 1
    (out / "summary.json").unlink()  # as if it had been killed after its last checkpoint
    resumed, _ = run([*TINY, *RULE, "epochs=400"], out)
    assert resumed["stopped_early"] == full["stopped_early"] and resumed["epoch"] == full["epoch"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), pd.read_csv(full_dir / "metrics.csv"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("stop_when.metric=test_loss", "stop_when.metric=test_loss is not valid; choose one of: test_acc, train_acc"),
        ("stop_when.threshold=1.5", "stop_when.threshold=1.5 is not valid; expected an accuracy in (0, 1]"),
        ("stop_when.patience=0", "stop_when.patience=0 is not valid; expected an integer >= 1"),
    ],
)
def test_a_bad_rule_fails_before_compute_naming_the_value(override, message):
    cfg = OmegaConf.to_object(compose(["stop_when.metric=test_acc", override]))
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_rule_is_off_by_default_and_can_be_added_on_resume(run, tmp_path):
    assert compose([]).stop_when.metric is None
    out = tmp_path / "r"
    run([*TINY, "epochs=6", "checkpoint_every=0"], out)
    (out / "summary.json").unlink()
    summary, _ = run([*TINY, *RULE, "epochs=400"], out)  # stop_when may change between run and resume
    assert summary["stopped_early"] is not None
