"""The official-code runner: its flag table, the release's flag spelling, and the conversion of the
official long-format log into our columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from grokking.official import OFFICIAL_RUNS, flags_for, read_long_metrics, write_result
from scripts.reproduce import RUNS


def test_every_official_run_is_one_of_ours():
    for figure, runs in OFFICIAL_RUNS.items():
        for name in runs:
            assert name in RUNS[figure], f"{figure}/{name} has no run in scripts/reproduce.py"


def test_table_covers_the_issue_figures():
    assert {"a_perp_adamw", "b_stablemax", "c_softmax"} <= set(OFFICIAL_RUNS["fig1"])
    assert len(OFFICIAL_RUNS["fig2"]) == 9
    assert {"b_adamw", "b_perp_adamw", "b_perp_sgd"} <= set(OFFICIAL_RUNS["fig6"])
    assert "baseline" in OFFICIAL_RUNS["fig8"]
    assert all(len(OFFICIAL_RUNS["fig6"][n].seeds) == 5 for n in ("b_adamw", "b_perp_adamw", "b_perp_sgd"))


def test_release_spelling_of_the_precision_flags():
    run = OFFICIAL_RUNS["fig6"]["b_perp_sgd"]
    fixed = flags_for(run, 3, release=False)
    release = flags_for(run, 3, release=True)
    assert fixed[fixed.index("--cross_entropy_dtype") + 1] == "float64"
    assert release[release.index("--softmax_precision") + 1] == "64"
    assert release[release.index("--train_precision") + 1] == "64"
    assert "--cross_entropy_dtype" not in release and fixed[-4:] == ["--seed", "3", "--device", "cpu"]


def long_log(positions: int) -> pd.DataFrame:
    rows = []
    for p in range(positions):
        for split, acc in (("train", 0.5 + 0.25 * p), ("test", 0.1 * p)):
            rows.append({"epoch": p, "input_type": split, "metric_name": "loss", "layer": None, "value": 2.0 - p})
            rows.append({"epoch": p, "input_type": split, "metric_name": "accuracy", "layer": None, "value": acc})
        rows.append(
            {"epoch": p, "input_type": "train", "metric_name": "softmax_collapse", "layer": None, "value": 0.3 * p}
        )
        rows.append({"epoch": p, "input_type": "train", "metric_name": "zero_terms", "layer": None, "value": 0.0})
        for layer, w in (("layers.0.weight", 3.0), ("layers.1.weight", 4.0)):
            rows.append({"epoch": p, "input_type": "general", "metric_name": "weights_l2", "layer": layer, "value": w})
    return pd.DataFrame(rows)


def test_long_format_becomes_our_columns(tmp_path):
    path = tmp_path / "metrics.csv"
    long_log(3).to_csv(path, index=False)
    df = read_long_metrics(path, log_frequency=50)
    # log position p is taken after the update of epoch index 50 p: the model has seen 50 p + 1 updates
    assert df.epoch.tolist() == [1, 51, 101]
    assert df.train_acc.tolist() == [0.5, 0.75, 1.0]
    assert df.test_loss.tolist() == [2.0, 1.0, 0.0]
    assert df.sc_fraction.tolist() == pytest.approx([0.0, 0.3, 0.6])
    assert df.weight_norm.tolist() == [5.0, 5.0, 5.0]
    assert "weight_norm/layers.0.weight" in df


def test_write_result_gathers_seeds_with_provenance(tmp_path):
    dirs = {}
    for seed in (42, 0):
        scratch = tmp_path / f"seed{seed}"
        (scratch / "loggs" / "key").mkdir(parents=True)
        long_log(4).to_csv(scratch / "loggs" / "key" / "metrics.csv", index=False)
        info = {
            "flags": ["--seed", str(seed)],
            "returncode": 0,
            "wall_time_s": 2.5,
            "threads": 1,
            "device": "cpu",
            "torch": "x",
        }
        (scratch / "run.json").write_text(json.dumps(info))
        dirs[seed] = scratch
    official = tmp_path / "fixed-720d244"
    out = tmp_path / "out"
    summary = write_result(dirs, out, "fig6", "b_adamw", OFFICIAL_RUNS["fig6"]["b_adamw"], official)
    df = pd.read_csv(out / "metrics.csv")
    assert sorted(df.seed.unique()) == [0, 42]
    assert summary["official_commit"] == "720d244" and summary["wall_time_s"] == 5.0
    assert summary["per_seed"]["42"]["epoch_train_acc_100"] == 11  # train accuracy 1.0 from position 2: epoch 2 * 5 + 1
    assert "seed_42" in (out / "config.yaml").read_text()


def official_snapshots() -> list:
    import os
    from pathlib import Path

    base = Path(os.environ.get("GROKKING_OFFICIAL_DIR", Path(__file__).resolve().parents[2] / "shared" / "official"))
    found = [d for d in (base, *sorted(base.glob("*"))) if (d / "grokking_experiments.py").is_file()]
    return found


@pytest.mark.parametrize("snapshot", official_snapshots() or [None], ids=lambda d: getattr(d, "name", "absent"))
def test_official_binary_input_crashes_in_both_snapshots(snapshot, tmp_path, monkeypatch):
    """Why Fig. 4-right's binary input has no official run: its dataset stores one-hot targets,
    which the official loss gathers as integer labels."""
    if snapshot is None:
        pytest.skip("no official snapshot at ../shared/official (set GROKKING_OFFICIAL_DIR)")
    import importlib
    import sys
    import types

    import torch

    assert OFFICIAL_RUNS["fig4"]["input_base2"].crashes
    stub = types.ModuleType("torchvision")
    stub.datasets = types.ModuleType("torchvision.datasets")
    monkeypatch.setitem(sys.modules, "torchvision", stub)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", stub.datasets)
    monkeypatch.syspath_prepend(str(snapshot))
    for name in ("datasets", "utils", "binary_operations", "constants", "models", "orthograd", "logger"):
        sys.modules.pop(name, None)
    datasets, utils = importlib.import_module("datasets"), importlib.import_module("utils")
    ops = importlib.import_module("binary_operations")
    data = datasets.BinaryAlgorithmicDataset(ops.add_mod, p=113, input_size=113, output_size=113)
    targets = data.targets[:8].long()
    assert targets.shape == (8, 113)  # one-hot rows, not labels
    loss = getattr(utils, "softmax_cross_entropy", None) or utils.cross_entropy_float64
    with pytest.raises(RuntimeError):
        loss(torch.zeros(8, 113), targets)
    for name in ("datasets", "utils", "binary_operations", "constants", "models", "orthograd", "logger"):
        sys.modules.pop(name, None)
