"""The official-code runner: its flag table, the release's flag spelling, and the conversion of the
official long-format log into our columns."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reproduction.official import OFFICIAL_RUNS, PARTIAL, SEEDS5, flags_for, read_long_metrics, seeds_for, write_result
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


def scratch_seed(folder: Path, seed: int, stopped_at: int | None = None) -> Path:
    """A scratch run of one seed: finished (its log under loggs/), or stopped by ``--until`` after
    ``stopped_at`` logged positions (the wrapper's partial log)."""
    scratch = folder / f"seed{seed}"
    info = {
        "flags": ["--seed", str(seed)],
        "returncode": 0,
        "wall_time_s": 2.0,
        "threads": 1,
        "device": "cpu",
        "torch": "x",
    }
    if stopped_at is None:
        (scratch / "loggs" / "key").mkdir(parents=True)
        long_log(4).to_csv(scratch / "loggs" / "key" / "metrics.csv", index=False)
    else:
        scratch.mkdir(parents=True)
        long_log(stopped_at).to_csv(scratch / PARTIAL, index=False)
        info = {
            **info,
            "returncode": -15,
            "stopped": {"until": {"sc_fraction": ">= 0.5"}, "onsets": {"sc_fraction": 11}},
        }
    (scratch / "run.json").write_text(json.dumps(info))
    return scratch


def test_write_result_gathers_seeds_with_provenance(tmp_path):
    dirs = {seed: scratch_seed(tmp_path, seed) for seed in (42, 0)}
    official = tmp_path / "fixed-720d244"
    out = tmp_path / "out"
    summary = write_result(dirs, out, "fig6", "b_adamw", OFFICIAL_RUNS["fig6"]["b_adamw"], official)
    df = pd.read_csv(out / "metrics.csv")
    assert sorted(df.seed.unique()) == [0, 42]
    assert summary["official_commit"] == "720d244" and summary["wall_time_s"] == 4.0
    assert summary["per_seed"]["42"]["epoch_train_acc_100"] == 11  # train accuracy 1.0 from position 2: epoch 2 * 5 + 1
    assert "seed_42" in (out / "config.yaml").read_text()


def test_running_some_seeds_again_keeps_the_others(tmp_path):
    """A run stopped at its onset with seeds 42 and 0, then run to its end with seed 42 alone: the
    result keeps seed 0's rows and status, and each seed is read by its own status."""
    from reproduction.results import Replicate, metrics
    from scripts import official as runner

    run, snapshot = OFFICIAL_RUNS["fig2"]["frac0.6_float32"], tmp_path / "fixed-720d244"
    out = tmp_path / "res" / "fig2" / "frac0.6_float32"
    first = {s: scratch_seed(tmp_path / "first", s, stopped_at=3) for s in (42, 0)}
    assert write_result(first, out, "fig2", "frac0.6_float32", run, snapshot)["status"] == "stopped"
    summary = write_result({42: scratch_seed(tmp_path / "again", 42)}, out, "fig2", "frac0.6_float32", run, snapshot)
    assert summary["seeds"] == [42, 0] and summary["status"] == "stopped"  # the least finished seed's
    assert {s: v["status"] for s, v in summary["per_seed"].items()} == {"42": "completed", "0": "stopped"}
    assert list(summary["stopped"]) == ["0"] and summary["wall_time_s"] == 2.0 + 2.0
    assert summary["epoch"] == 101  # seed 0 stopped at its third logged position (epoch 2 * 50 + 1)
    df = pd.read_csv(out / "metrics.csv")
    assert df.groupby("seed").size().to_dict() == {0: 3, 42: 4}
    assert (out / "config.yaml").read_text().count("seed_") == 2
    assert summary["per_seed"]["0"]["flags"] == ["--seed", "0"] and summary["per_seed"]["0"]["wall_time_s"] == 2.0
    assert (
        len(metrics("fig2", "frac0.6_float32", Replicate(tmp_path / "res", seed=42))) == 4
    )  # finished: its end counts
    with pytest.raises(FileNotFoundError, match="did not finish"):
        metrics("fig2", "frac0.6_float32", Replicate(tmp_path / "res", seed=0))
    assert runner.completed(out, [42]) and not runner.completed(out, [42, 0])
    assert runner.status_text(summary) == "stopped (seed 42 completed, 0 stopped)"


def test_a_seed_without_its_own_wall_time_gets_a_share_of_what_the_total_leaves(tmp_path):
    """Results converted before seeds recorded their wall time: a kept seed is charged an equal
    share of the run's total less the seeds that did record theirs."""
    from reproduction.official import kept_seeds

    run, snapshot = OFFICIAL_RUNS["fig2"]["frac0.6_float32"], tmp_path / "fixed-720d244"
    out = tmp_path / "fig2" / "frac0.6_float32"
    dirs = {s: scratch_seed(tmp_path, s) for s in (42, 0, 1)}
    write_result(dirs, out, "fig2", "frac0.6_float32", run, snapshot)
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_time_s"] = 10.0  # seed 42 measured 2 s; seeds 0 and 1 share the other 8 s
    for seed in ("0", "1"):
        del summary["per_seed"][seed]["wall_time_s"]
    (out / "summary.json").write_text(json.dumps(summary))
    assert kept_seeds(out, {0})["wall_time_s"] == 2.0 + 4.0
    assert kept_seeds(out, {42})["wall_time_s"] == 8.0
    assert kept_seeds(out, {42, 0, 1}) is None


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


FAKE_SCRIPT = """
import os, sys, time
import pandas as pd
import logger

epochs = int(sys.argv[sys.argv.index("--num_epochs") + 1])
log = logger.MetricsLogger()
for p in range(epochs):
    rows = [{"epoch": p, "input_type": s, "metric_name": m, "layer": None, "value": v}
            for s in ("train", "test") for m, v in (("loss", 1.0), ("accuracy", 0.5))]
    rows.append({"epoch": p, "input_type": "train", "metric_name": "softmax_collapse", "layer": None, "value": 0.1 * p})
    rows.append({"epoch": p, "input_type": "train", "metric_name": "zero_terms", "layer": None, "value": 0.0})
    rows.append({"epoch": p, "input_type": "general", "metric_name": "weights_l2", "layer": "w", "value": 1.0})
    log.log_metrics(rows)
    time.sleep(0.1)
os.makedirs("loggs/key", exist_ok=True)
log.metrics_df.to_csv("loggs/key/metrics.csv", index=False)
"""
FAKE_LOGGER = """
import pandas as pd

class MetricsLogger:
    def __init__(self):
        self.metrics_df = pd.DataFrame()

    def log_metrics(self, rows):
        self.metrics_df = pd.concat([self.metrics_df, pd.DataFrame(rows)], ignore_index=True)
"""


def test_until_stops_a_seed_at_its_onset_and_the_run_reads_as_stopped(tmp_path, monkeypatch):
    """``scripts/official.py --until sc_fraction=0.5`` ends a seed once the onset is in its log (two
    logged epochs in a row), keeps the log, and is not run again; the run's status is ``stopped``
    and the claims read its onset, not its end. A fake snapshot stands in for the official script."""
    from scripts import official as runner

    snapshot = tmp_path / "fixed-720d244"
    snapshot.mkdir()
    (snapshot / "grokking_experiments.py").write_text(FAKE_SCRIPT)
    (snapshot / "logger.py").write_text(FAKE_LOGGER)
    monkeypatch.setattr(runner, "POLL_S", 0.2)
    scratch = tmp_path / "seed42"
    flags = ["--num_epochs", "300", "--seed", "42", "--device", "cpu"]
    run = OFFICIAL_RUNS["fig2"]["frac0.4_float64"]  # logs every 50 epochs
    code, wall = runner.run_seed(snapshot, scratch, flags, 1, "cpu", {"sc_fraction": 0.5}, run.log_frequency)
    info = json.loads((scratch / "run.json").read_text())
    assert code == 0 and runner.done(scratch) and wall < 25  # the full 300 positions would take 30 s
    assert info["stopped"]["onsets"] == {"sc_fraction": 251}  # position 5 (0.5 >= 0.5), then 6: epoch 5 * 50 + 1
    assert runner.run_seed(snapshot, scratch, flags, 1, "cpu", {"sc_fraction": 0.5}, 50) == (0, 0.0)  # not rerun
    summary = write_result({42: scratch}, tmp_path / "out", "fig2", "frac0.4_float64", run, snapshot)
    assert summary["status"] == "stopped" and summary["stopped"]["42"]["until"] == {"sc_fraction": ">= 0.5"}

    from reproduction.results import Replicate, onsets

    (tmp_path / "res" / "fig2").mkdir(parents=True)
    (tmp_path / "out").rename(tmp_path / "res" / "fig2" / "frac0.4_float64")
    assert onsets("fig2", "frac0.4_float64", "sc_fraction", 0.5, Replicate(tmp_path / "res", seed=42)) == [251]


def test_each_run_is_converted_as_its_last_seed_ends(tmp_path, monkeypatch, capsys):
    """A batch converts a run into ``results/official/`` as soon as its seeds are done, so a batch
    cut short keeps every run it finished; a failed seed is one error line at the end."""
    import sys

    from reproduction.official import OfficialRun
    from scripts import official as runner

    snapshot = tmp_path / "fixed-720d244"
    snapshot.mkdir()
    (snapshot / "grokking_experiments.py").write_text(FAKE_SCRIPT.replace("import logger", FAIL_ON_FLAG))
    (snapshot / "logger.py").write_text(FAKE_LOGGER)
    (snapshot / "utils.py").write_text("# --cross_entropy_dtype: the fixed snapshot's spelling\n")
    table = {"figX": {"first": OfficialRun((), 3, 1), "second": OfficialRun(("--fail",), 3, 1)}}
    monkeypatch.setattr(runner, "OFFICIAL_RUNS", table)
    monkeypatch.setattr(runner, "POLL_S", 0.2)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    argv = ["official.py", "figX", "--official-dir", str(snapshot), "--out", str(out), "--scratch", str(scratch)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="1 official runs failed: figX/second/seed42"):
        runner.main()
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines[0].startswith("figX/first seed 42: ok")
    assert lines[1] == f"wrote {out / '720d244' / 'figX' / 'first'} (completed)"  # before the next run ends
    assert lines[2].startswith("figX/second seed 42: exit 1")
    assert json.loads((out / "720d244" / "figX" / "first" / "summary.json").read_text())["status"] == "completed"
    assert not (out / "720d244" / "figX" / "second").exists()


FAIL_ON_FLAG = 'import logger\nif "--fail" in sys.argv: sys.exit(1)'


def test_until_names_a_logged_column():
    from reproduction.official import parse_until

    assert parse_until("sc_fraction=0.5") == ("sc_fraction", 0.5)
    for bad in ("sc=0.5", "sc_fraction", "test_acc=high"):
        with pytest.raises(ValueError, match="--until"):
            parse_until(bad)


def test_seeds_beyond_a_runs_own_continue_in_the_five_seed_order():
    single, five = OFFICIAL_RUNS["fig2"]["frac0.6_float32"], OFFICIAL_RUNS["fig6"]["b_adamw"]
    assert seeds_for(single) == (42,) and seeds_for(single, 1) == (42,)
    assert seeds_for(single, 3) == (42, 0, 1) and seeds_for(single, 5) == SEEDS5
    assert seeds_for(five, 2) == (42, 0) and seeds_for(five, 6) == (*SEEDS5, 4)


def test_a_run_converted_as_completed_with_its_seeds_is_not_run_again(tmp_path):
    """``scripts/official.py`` skips a run whose ``results/official/...`` summary says it completed
    with every seed asked for (a fresh machine has no scratch runs to tell it so); a stopped or
    interrupted run, or one asked for with more seeds, runs."""
    from scripts import official as runner

    result = tmp_path / "fig4" / "add_mod"
    assert not runner.completed(result, [42])
    result.mkdir(parents=True)
    for status, seeds, asked, skipped in (
        ("completed", [42], [42], True),
        ("completed", [42], [42, 0, 1], False),
        ("stopped", [42], [42], False),
        ("interrupted", [42, 0], [42], False),
    ):
        (result / "summary.json").write_text(json.dumps({"status": status, "seeds": seeds}))
        assert runner.completed(result, asked) is skipped, (status, seeds, asked)


def test_cuda_asked_for_without_a_gpu_is_one_error_line_before_anything_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import torch
    from official import official_dir

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(
        [sys.executable, "scripts/official.py", "fig9", "--only", "plain_sgd_frac0.4_float16", "--device", "cuda",
         "--official-dir", str(official_dir()), "--scratch", str(tmp_path / "scratch"), "--out", str(tmp_path / "out")],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        f"error: --device cuda: torch {torch.__version__} sees no CUDA device; use --device cpu"
    ]
    assert not (tmp_path / "scratch").exists()


def test_the_runs_too_long_for_cpus_are_marked_and_selected_by_gpu_runs():
    """``--gpu-runs`` (what ``make gpu-batch`` runs) lists exactly the official runs whose manifest
    says ``gpu: true``: the long ones no CPU run has made (Fig. 1c, Fig. 4, Fig. 6a's transformers)."""
    import subprocess
    import sys

    marked = {f"{f}/{n}" for f, runs in OFFICIAL_RUNS.items() for n, r in runs.items() if r.gpu and not r.crashes}
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "scripts/official.py", "--gpu-runs", "--list"], cwd=root, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0] for line in out.stdout.splitlines() if " seeds " in line}
    assert listed == marked and {"fig1/c_softmax", "fig4/add_mod", "fig6/a_perp_adamw"} <= listed
