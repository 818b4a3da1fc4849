"""A tiny version of the study through its entry point (scripts/study_baselines.py, as `make study-baselines`),
and the grid report of its manifest (reproduction/experiments/study_baselines.yaml, reproduction/study_grid.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "dataset.modulus=23", "--set", "epochs=30", "--set", "log_every=5", "--set", "device=cpu"]


def study(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "scripts/study_baselines.py", *args],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def test_tiny_study_runs_reports_and_skips_or_resumes_on_a_rerun(tmp_path):
    runs = tmp_path / "runs"
    grid = [
        "--archs",
        "mlp2",
        "--methods",
        "perpgrad,adamw",
        "--decays",
        "1",
        "--lrs",
        "0.01,0.02",
        "--replicates",
        "2",
    ]
    res = study("run", *grid, "--out", str(runs), *TINY)
    assert res.returncode == 0, res.stderr[-2000:]
    dirs = sorted(p.name for p in (runs / "mlp2").iterdir() if p.is_dir())
    assert dirs == [f"{m}_lr{lr}_wd{wd}_s{s}" for m, wd in (("adamw", "1.0"), ("perpgrad", "0.0")) for lr in ("0.01", "0.02") for s in (0, 1)]  # fmt: skip
    for d in dirs:
        cfg = (runs / "mlp2" / d / "config.yaml").read_text()
        seed = d[-1]
        assert f"seed: {seed}" in cfg and json.loads((runs / "mlp2" / d / "summary.json").read_text())["status"]
        assert "stop_when:\n  metric: test_acc" in cfg  # the study's stopping rule

    # a rerun skips completed runs and resumes one that did not finish
    done = runs / "mlp2" / "perpgrad_lr0.01_wd0.0_s0"
    kept = (done / "summary.json").read_text()
    unfinished = runs / "mlp2" / "perpgrad_lr0.01_wd0.0_s1"
    (unfinished / "summary.json").unlink()
    res = study(
        "run",
        "--archs",
        "mlp2",
        "--methods",
        "perpgrad",
        "--lrs",
        "0.01",
        "--replicates",
        "2",
        "--out",
        str(runs),
        *TINY,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (done / "summary.json").read_text() == kept and "seed=0," not in res.stdout  # not launched again
    assert f"resuming {unfinished}" in res.stderr and (unfinished / "summary.json").is_file()

    out, figures = tmp_path / "report", tmp_path / "figures"
    res = study("report", "--runs", str(runs), "--out", str(out), "--figures", str(figures), "--min-replicates", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(out / "runs.csv")
    assert len(table) == 8 and set(table.method) == {"perpgrad", "adamw"} and set(table.budget) == {30}
    assert (table.seed == table.dataset_seed).all()
    best = pd.read_csv(out / "table.csv")
    assert sorted(best.method) == ["adamw", "perpgrad"] and (best.replicates == 2).all()
    assert "⊥AdamW" in (out / "table.md").read_text()
    assert (figures / "study_baselines_heatmap.png").stat().st_size > 0
    assert (figures / "study_baselines_best.png").stat().st_size > 0

    # git keeps no metrics.csv of the study: a report without them keeps the committed curves
    curves = pd.read_csv(out / "curves.csv")
    assert len(curves) > 0
    for m in runs.glob("mlp2/*/metrics.csv"):
        m.unlink()
    res = study("report", "--runs", str(runs), "--out", str(out), "--figures", str(figures), "--min-replicates", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(out / "curves.csv"), curves)


def load_study():
    sys.path.insert(0, str(ROOT))
    from reproduction import study_grid

    return study_grid


def test_the_default_grid_adds_lrs_beyond_the_end_where_a_best_setting_lay(tmp_path):
    res = study("run", "--dry-run", "--archs", "transformer", "--out", str(tmp_path))
    beyond = [line for line in res.stdout.splitlines() if "optimizer.lr=0.01 " in line or "optimizer.lr=0.02 " in line]
    assert len(beyond) == 2 and all("optimizer=adamw" in b and "optimizer.weight_decay=1 " in b for b in beyond)
    below = [
        line for line in res.stdout.splitlines() if "optimizer.lr=0.0005 " in line or "optimizer.lr=0.0002 " in line
    ]
    assert len(below) == 2 and all("optimizer=perp_adamw" in b and "optimizer.weight_decay=0 " in b for b in below)
    # a method left out of --methods gets no lrs beyond the grid either
    res = study("run", "--dry-run", "--archs", "transformer", "--methods", "adamw", "--out", str(tmp_path))
    assert "optimizer.lr=0.0005 " not in res.stdout and "optimizer.lr=0.01 " in res.stdout
    res = study("run", "--dry-run", "--archs", "mlp1", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    edge = {lr: [line for line in lines if f"optimizer.lr={lr} " in line] for lr in ("0.1", "0.2")}
    assert all(len(v) == 3 for v in edge.values())
    assert all("study_baselines_mlp1" in line and "optimizer=adamw" in line for v in edge.values() for line in v)
    # decay 10 is left out: lr × decay ≥ 1 zeroes the weights every step
    for v in edge.values():
        assert sorted(line.split("optimizer.weight_decay=")[1].split()[0] for line in v) == ["0.3", "1", "3"]
    # an explicit grid runs exactly what it names
    res = study("run", "--dry-run", "--archs", "mlp1", "--lrs", "0.05", "--out", str(tmp_path))
    assert "optimizer.lr=0.1 " not in res.stdout and "optimizer.lr=0.5 " not in res.stdout


def test_a_best_lr_at_the_end_of_the_lrs_run_is_marked_as_at_the_grid_edge():
    s = load_study()
    per_setting = pd.DataFrame(
        {"arch": ["mlp1"] * 4, "method": ["adamw", "adamw", "adamw", "perpgrad"], "lr": [0.01, 0.02, 0.05, 0.02]}
    )
    row = lambda method, lr: pd.Series({"arch": "mlp1", "method": method, "lr": lr})  # noqa: E731
    assert s.at_grid_edge(row("adamw", 0.05), per_setting) and s.at_grid_edge(row("adamw", 0.01), per_setting)
    assert not s.at_grid_edge(row("adamw", 0.02), per_setting)
    assert not s.at_grid_edge(row("perpgrad", 0.02), per_setting)  # a single lr run: no grid to be at the edge of
    censored = pd.Series({"arch": "mlp1", "method": "adamw", "lr": 0.05, "share_99": 0.0})
    assert not s.at_grid_edge(censored, per_setting)  # no seed generalized anywhere: no best to place


def test_the_best_setting_generalizes_most_then_fastest_then_gets_furthest():
    s = load_study()
    table = pd.DataFrame(
        {
            "arch": ["mlp2"] * 8,
            "method": ["adamw"] * 4 + ["stablemax"] * 4,
            "lr": [0.001, 0.001, 0.002, 0.002] * 2,
            "weight_decay": [1.0] * 4 + [0.0] * 4,
            "seed": [0, 1] * 4,
            "budget": [3000] * 8,
            # adamw: lr 0.001 generalizes on both seeds (slowly), lr 0.002 on one (fast): both-seeds wins
            "epoch_test_acc_95": [900, 800, 100, None, None, None, None, None],
            "epoch_test_acc_99": [1000, 900, 120, None, None, None, None, None],
            # stablemax never generalizes: the lr whose seeds got furthest is its best, not the smallest lr
            "best_test_acc": [1.0, 1.0, 1.0, 0.4, 0.01, 0.02, 0.05, 0.07],
        }
    )
    best = s.best_settings(s.settings(table, "weight_decay"), min_replicates=2).set_index("method")
    assert best.loc["adamw", "lr"] == 0.001
    assert best.loc["stablemax", "lr"] == 0.002 and best.loc["stablemax", "share_99"] == 0


def fake_run(runs, method, lr, wd, seed, epoch_99, budget=3000):
    """A finished study run's summary.json and config.yaml, as `collect` reads them."""
    folder = runs / "mlp2" / f"{method}_lr{lr:g}_wd{float(wd)}_s{seed}"
    folder.mkdir(parents=True)
    cfg = {
        "optimizer": {"orthogonal": method == "perpgrad", "lr": lr, "weight_decay": wd},
        "loss": {"name": "stablemax" if method == "stablemax" else "cross_entropy"},
        "model": {"name": "mlp", "depth": 2},
        "dataset": {"seed": seed},
    }
    (folder / "config.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    summary = {
        "status": "completed",
        "epoch": budget if epoch_99 is None else epoch_99 + 20,
        "epochs": budget,
        "stopped_early": None if epoch_99 is None else {"epoch": epoch_99 + 20},
        "wall_time_s": 1.0,
        "per_seed": {
            str(seed): {"epoch_test_acc_95": epoch_99, "epoch_test_acc_99": epoch_99, "final": {"test_acc": 0.5}}
        },
    }
    (folder / "summary.json").write_text(json.dumps(summary))


def test_extend_gives_more_epochs_only_to_best_settings_with_censored_seeds(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(5):
        fake_run(runs, "perpgrad", 0.01, 0, seed, [100, 120, 140, None, None][seed])  # best ⊥AdamW: 3 of 5
        fake_run(runs, "perpgrad", 0.02, 0, seed, None)
        fake_run(runs, "adamw", 0.05, 3, seed, 150)  # best AdamW: all 5 generalized
        fake_run(runs, "stablemax", 0.01, 0, seed, None)  # generalized on no seed
    res = study("extend", "--dry-run", "--out", str(runs), "--epochs", "9000")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and "optimizer=perp_adamw optimizer.lr=0.01 " in lines[0]
    assert lines[0].endswith("epochs=9000 extend=true") and "seed=0,1,2,3,4" in lines[0]


def test_the_manifest_names_every_committed_run_and_its_report_is_the_committed_one(tmp_path):
    """Every committed run of the study is a run of its manifest's grid, and the grid report of the
    committed runs is the committed report, byte for byte (figures aside)."""
    sys.path.insert(0, str(ROOT))
    from reproduction import study as studies
    from reproduction import study_grid

    s = studies.load("study_baselines")
    runs = studies.Runs(s)
    planned = {r.path for a in s.archs for m in s.methods.values() for r in runs.tuning(a, m)}
    committed = {p.parent for p in (ROOT / "results/study_baselines/runs").glob("*/*/summary.json")}
    assert committed == planned and len(planned) == 620
    out = tmp_path / "report"
    out.mkdir()
    (out / "curves.csv").write_bytes((ROOT / "results/study_baselines/curves.csv").read_bytes())
    study_grid.report(s, s.runs, out, tmp_path / "figures")
    for name in ("runs.csv", "settings.csv", "settings.md", "table.csv", "table.md", "curves.csv"):
        assert (out / name).read_text() == (ROOT / "results/study_baselines" / name).read_text(), name


def test_the_generic_study_command_prices_the_committed_grid_as_complete():
    res = subprocess.run(
        [sys.executable, "scripts/study.py", "study_baselines", "--plan"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "all: 0 runs to make" in res.stdout and "transformer  total           95/95" in res.stdout
