"""Sweeps (-m) with the launchers, the sweep summary, and jobs that share a process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from grokking.sweep_summary import main as summarize_main
from grokking.sweep_summary import write_summary

ROOT = Path(__file__).resolve().parent.parent
TINY = ["dataset.modulus=23", "model.width=32", "epochs=20", "log_every=5", "device=cpu"]


def cli(args, sweep_dir=None, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    where = [f"hydra.sweep.dir={sweep_dir}"] if sweep_dir else []
    return subprocess.run(
        [sys.executable, "train.py", *args, *where], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300
    )


def summary_of(job_dir: Path) -> dict:
    return json.loads((job_dir / "summary.json").read_text())


def test_local_launcher_two_by_two_gives_four_runs_and_their_table(tmp_path):
    sweep = tmp_path / "sweep"
    res = cli(["-m", "launcher=local", "precision=float32,float64", "optimizer.weight_decay=0,1", *TINY], sweep)
    assert res.returncode == 0, res.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    expected = [("float32", 0.0), ("float32", 1.0), ("float64", 0.0), ("float64", 1.0)]
    for job, (dtype, wd) in zip(jobs, expected):
        cfg = yaml.safe_load((job / "config.yaml").read_text())
        assert (cfg["precision"]["loss_dtype"], cfg["optimizer"]["weight_decay"]) == (dtype, wd)
        summary = summary_of(job)
        assert summary["status"] == "completed"
        assert summary["torch_threads"] == max(1, os.cpu_count() // 2)  # two jobs at once share the cores

    summarize_main([str(sweep)])
    table = pd.read_csv(sweep / "sweep_summary.csv")
    assert list(table.columns[:5]) == ["job", "precision", "optimizer.weight_decay", "seed", "status"]
    assert [(r.precision, r._3) for r in table.itertuples()] == expected
    for row, job in zip(table.itertuples(index=False), jobs):
        s = summary_of(job)["per_seed"]["0"]
        assert row.status == "completed"
        assert row.final_test_acc == pytest.approx(s["final"]["test_acc"])
        assert row.best_test_acc == pytest.approx(s["best_test_acc"])
        assert row.final_sc_fraction == pytest.approx(s["final"]["sc_fraction"])
        for key in ("epoch_train_acc_100", "epoch_test_acc_50", "epoch_test_acc_95"):
            assert (pd.isna(getattr(row, key)) and s[key] is None) or getattr(row, key) == s[key]
    markdown = (sweep / "sweep_summary.md").read_text().splitlines()
    assert len(markdown) == 2 + 4 and "| precision | optimizer.weight_decay |" in markdown[0]
    assert (sweep / "sweep_summary.png").stat().st_size > 0


def test_sweep_goes_on_after_a_divergence_and_the_table_keeps_every_status(tmp_path):
    sweep = tmp_path / "sweep"
    res = cli(["-m", "optimizer=sgd", "optimizer.lr=1e30,0.1", *TINY], sweep)
    assert res.returncode == 0, res.stderr
    assert [summary_of(sweep / j)["status"] for j in ("0", "1")] == ["diverged", "completed"]
    # what a cluster leaves behind: an interrupted run, one killed before its summary, one that never started
    shutil.copytree(sweep / "1", sweep / "2")
    interrupted = {**summary_of(sweep / "2"), "status": "interrupted", "epoch": 10}
    (sweep / "2" / "summary.json").write_text(json.dumps(interrupted))
    shutil.copytree(sweep / "1", sweep / "3")
    (sweep / "3" / "summary.json").unlink()
    shutil.copytree(sweep / "1" / ".hydra", sweep / "4" / ".hydra")
    table = write_summary(sweep)
    assert list(table["status"]) == ["diverged", "completed", "interrupted", "incomplete", "failed"]
    assert table["epoch"].iloc[0] == summary_of(sweep / "0")["epoch"]
    assert table["final_test_acc"].iloc[3] == pytest.approx(table["final_test_acc"].iloc[1])
    assert "diverged" in (sweep / "sweep_summary.md").read_text()


def test_submitit_local_launcher_composes_and_runs_one_job(tmp_path):
    sweep = tmp_path / "sweep"
    res = cli(["-m", "launcher=submitit_local", *TINY], sweep)
    assert res.returncode == 0, res.stderr
    summary = summary_of(sweep / "0")
    assert summary["status"] == "completed"
    assert summary["torch_threads"] == 1  # cpus_per_task
    assert list((sweep / ".submitit").glob("*/*_log.out")), "submitit wrote no job log"


def test_slurm_launcher_composes_with_its_resources():
    from grokking.cli import CONF_DIR, compose

    cfg = compose(["launcher=slurm", "hydra.launcher.partition=gpu"])  # noqa: F841 (composition is the test)
    slurm = yaml.safe_load((CONF_DIR / "launcher" / "slurm.yaml").read_text())["hydra"]["launcher"]
    assert {"partition", "timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb"} <= set(slurm)


def test_bad_launcher_fails_with_one_line(tmp_path):
    res = cli(["-m", "launcher=slrum", *TINY], tmp_path / "sweep")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: launcher=slrum is not valid; choose one of: local, slurm, submitit_local"


def test_the_local_launcher_is_a_core_dependency_and_submitit_an_extra():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("hydra-joblib-launcher") for d in project["dependencies"])
    assert not any(d.startswith("hydra-submitit-launcher") for d in project["dependencies"])
    assert any(d.startswith("hydra-submitit-launcher") for d in project["optional-dependencies"]["slurm"])


@pytest.mark.parametrize(
    "launcher,line",
    [
        (
            "slurm",
            "launcher=slurm needs the hydra-submitit-launcher plugin, which is not installed: pip install -e '.[slurm]'",
        ),
        ("local", "launcher=local needs the hydra-joblib-launcher plugin, which is not installed: pip install -e ."),
    ],
)
def test_a_missing_launcher_plugin_ends_with_one_line_naming_the_extra(monkeypatch, capsys, launcher, line):
    from grokking import cli as cli_module

    monkeypatch.setattr(cli_module, "plugin_installed", lambda module: False)
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", f"launcher={launcher}", "seed=0,1"])
    with pytest.raises(SystemExit) as exit:
        cli_module.run(lambda cfg: None)
    assert exit.value.code == 2
    assert capsys.readouterr().err == f"error: {line}\n"
    assert cli_module.check_launcher_plugins([f"launcher={launcher}"]) == line


@pytest.mark.slow
def test_a_fresh_environment_from_the_readme_first_command_runs_the_local_sweep(tmp_path):
    """The README's first command (torch, then the package without extras) is all that the README's
    ``-m launcher=local`` sweep needs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    for args in (["torch==2.13.0"], ["-e", str(ROOT)]):
        subprocess.run([python, "-m", "pip", "install", "-q", *args], check=True, timeout=1800)
    sweep = tmp_path / "sweep"
    res = subprocess.run(
        [python, "train.py", "-m", "launcher=local", "hydra.launcher.n_jobs=2", "loss=softmax,stablemax", "seed=0,1,2",
         "cpu_kernel=torch", *TINY, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [str(i) for i in range(6)]
    assert all(summary_of(sweep / str(i))["status"] == "completed" for i in range(6))


def test_jobs_sharing_a_process_match_jobs_run_alone(tmp_path):
    """The default launcher runs every job of a sweep in one process, one after another: seeds,
    dtypes and wandb runs of earlier jobs must not change later ones."""
    sweep = tmp_path / "sweep"
    grid = ["precision=float16,float64", "seed=1,0", "optimizer.weight_decay=1,0", "logger=wandb"]
    res = cli(["-m", *grid, *TINY], sweep)
    assert res.returncode == 0, res.stderr
    assert len({(sweep / str(j) / "metrics.csv").read_bytes() for j in range(8)}) == 8
    last = ["precision=float64", "seed=0", "optimizer.weight_decay=0", "logger=wandb", *TINY]
    alone = tmp_path / "alone"
    assert cli([*last, f"hydra.run.dir={alone}"]).returncode == 0
    assert (sweep / "7" / "metrics.csv").read_bytes() == (alone / "metrics.csv").read_bytes()
    # each job logged to its own wandb run, in its own directory
    run_ids = [(sweep / str(j) / "wandb" / "run_id").read_text() for j in range(8)]
    assert len(set(run_ids)) == 8
    for j in range(8):
        (offline,) = (sweep / str(j) / "wandb").glob("offline-run-*")
        assert offline.name.endswith(run_ids[j].strip())
