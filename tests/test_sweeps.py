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
    # the jobs ran side by side: whole progress lines naming the job, never a bar redrawn with \r
    assert "\r" not in res.stderr
    last = sorted(line.split(":")[0] for line in res.stderr.splitlines() if ": epoch 20/20 (100 %" in line)
    labels = [f"precision={d} optimizer.weight_decay={w:g}" for d, w in expected]
    assert last == [f"job {n} ({label})" for n, label in enumerate(labels)]
    # and the sweep ended with its table, one line per job
    table = [line.split() for line in res.stdout.splitlines() if line[:1].isdigit()]
    assert [row[:4] for row in table] == [[str(n), *label.split(), "completed"] for n, label in enumerate(labels)]

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
    # what a cluster leaves behind of a 5-job sweep: an interrupted run, one killed before its summary,
    # one that never started
    multirun = (sweep / "multirun.yaml").read_text()
    assert "- optimizer.lr=1e30,0.1\n" in multirun
    (sweep / "multirun.yaml").write_text(
        multirun.replace("optimizer.lr=1e30,0.1\n", "optimizer.lr=1e30,0.1,0.1,0.1,0.1\n")
    )
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


def test_the_local_launcher_comes_with_training_and_submitit_is_an_extra():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("hydra-joblib-launcher") for d in project["optional-dependencies"]["train"])
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


def test_slurm_off_a_cluster_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    """``launcher=slurm`` where sbatch and srun are not on PATH (submitit could not submit)."""
    from grokking import cli as cli_module

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    monkeypatch.setattr(cli_module, "plugin_installed", lambda module: True)
    line = (
        "launcher=slurm submits to a SLURM cluster, but sbatch and srun are not on PATH; run on the cluster's "
        "login node, or try the same sweep here with launcher=submitit_local (or launcher=local)"
    )
    for arg in ("launcher=slurm", "launcher=choice(local,slurm)"):
        monkeypatch.setattr(sys, "argv", ["train.py", "-m", arg, "seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}"])
        with pytest.raises(SystemExit) as exit:
            cli_module.run(lambda cfg: None)
        assert exit.value.code == 2
        assert capsys.readouterr().err == f"error: {line}\n"
    assert not (tmp_path / "s").exists()
    (tmp_path / "sbatch").write_text("#!/bin/sh\n")
    (tmp_path / "sbatch").chmod(0o755)
    assert "but srun is not on PATH" in cli_module.check_launcher_plugins(["launcher=slurm"])


def test_a_submission_the_scheduler_refuses_is_one_line(capsys):
    """An error raised while submitit submits (e.g. sbatch rejects the partition) is one line, not a traceback."""
    from grokking import cli as cli_module

    scope: dict = {}
    code = "def submit():\n    raise RuntimeError('sbatch: error: invalid partition name specified\\nmore detail')\n"
    exec(compile(code, "/site-packages/submitit/slurm/slurm.py", "exec"), scope)
    with pytest.raises(SystemExit) as exit:
        cli_module.report_errors(scope["submit"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == (
        "error: the launcher could not start the sweep's jobs: sbatch: error: invalid partition name specified\n"
    )


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


# --- sweep summaries of any sweep, built from what a sweep leaves on disk (no training) ---------


def fake_sweep(sweep: Path, task: list[str], subdir: str = "${hydra.job.num}") -> None:
    """The multirun.yaml Hydra writes as a sweep starts: its task overrides and job subdirectory."""
    sweep.mkdir(parents=True, exist_ok=True)
    hydra = {"sweep": {"dir": str(sweep), "subdir": subdir}, "overrides": {"hydra": [], "task": task}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


def fake_job(job: Path, overrides: list[str], test_acc: float | None = 0.5, seeds=(0,), status="completed") -> None:
    """A job directory: Hydra's record of its overrides and, unless ``test_acc`` is None (a job that
    failed before training), a summary.json."""
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if test_acc is not None:
        final = {"test_acc": test_acc, "train_acc": 1.0, "sc_fraction": 0.0, "train_loss": 0.1}
        per_seed = {str(s): {"final": final, "best_test_acc": test_acc} for s in seeds}
        (job / "summary.json").write_text(json.dumps({"status": status, "epoch": 20, "per_seed": per_seed}))


def test_a_seed_sweep_is_summarized_with_one_seed_column(tmp_path, capsys):
    """The README's own example sweeps seed: its rows carry the seed once, and the plot takes it as an axis."""
    sweep = tmp_path / "sweep"
    fake_sweep(sweep, ["loss=softmax,stablemax", "seed=0,1,2"])
    for num, (loss, seed) in enumerate((loss, seed) for loss in ("softmax", "stablemax") for seed in (0, 1, 2)):
        fake_job(sweep / str(num), [f"loss={loss}", f"seed={seed}"], test_acc=0.1 * num, seeds=(seed,))
    summarize_main([str(sweep), "--x", "seed", "--y", "loss"])
    table = pd.read_csv(sweep / "sweep_summary.csv")
    assert list(table.columns[:4]) == ["job", "loss", "seed", "status"]
    assert list(table["seed"]) == [0, 1, 2, 0, 1, 2] and list(table["loss"]) == ["softmax"] * 3 + ["stablemax"] * 3
    assert list(table["final_test_acc"]) == pytest.approx([0.1 * n for n in range(6)])
    assert (sweep / "sweep_summary.png").stat().st_size > 0
    assert "error" not in capsys.readouterr().err


def test_a_group_sweep_with_glob_lists_every_launched_job(tmp_path):
    """``loss=glob(s*)`` is expanded against the loss group as Hydra expands it: the jobs that never
    started are listed too."""
    sweep = tmp_path / "sweep"
    fake_sweep(sweep, ["loss=glob(s*)", "seed=0,1"])
    fake_job(sweep / "0", ["loss=softmax", "seed=0"])
    fake_job(sweep / "1", ["loss=softmax", "seed=1"], seeds=(1,))
    table = write_summary(sweep)
    assert list(table["loss"]) == ["softmax", "softmax", "stablemax", "stablemax"]
    assert list(table["seed"]) == [0, 1, 0, 1]
    assert list(table["status"]) == ["completed", "completed", "not started", "not started"]


def test_a_second_sweep_into_the_same_directory_is_summarized_as_itself(tmp_path, capsys):
    """Three seed jobs, then a loss sweep into the same directory: the table is the loss sweep's.
    Job 0 of the second sweep has the config of the first sweep's job 0 (Hydra skipped it, and that
    run is its result); job 1's directory holds another config's run (refused); job 2 is not a job
    of the second sweep."""
    from grokking.cli import compose
    from grokking.train import to_config

    sweep = tmp_path / "sweep"
    for seed in range(3):
        fake_job(sweep / str(seed), [f"seed={seed}"], test_acc=0.9)
    (sweep / "0" / "config.yaml").write_text(yaml.safe_dump(to_config(compose(["loss=softmax"]))[1]))
    fake_sweep(sweep, ["loss=softmax,stablemax"])
    summarize_main([str(sweep)])
    table = pd.read_csv(sweep / "sweep_summary.csv")
    assert list(table["job"]) == [0, 1] and list(table["loss"]) == ["softmax", "stablemax"]
    assert list(table["status"]) == ["completed", "holds another run"]
    assert table["final_test_acc"].iloc[0] == pytest.approx(0.9) and pd.isna(table["final_test_acc"].iloc[1])
    assert "seed" not in table.columns[:2]  # the first sweep's swept key is not this sweep's
    assert "left out 2: job directories of an earlier sweep" in capsys.readouterr().err


def test_named_job_directories_are_matched_to_the_jobs_by_their_overrides(tmp_path):
    """A sweep with a named ``hydra.sweep.subdir`` (as scripts/study_baselines.py runs) sees only its own jobs."""
    sweep = tmp_path / "sweep"
    fake_job(sweep / "lr0.1_s0", ["optimizer.lr=0.1", "seed=0"])
    fake_job(sweep / "lr0.01_s0", ["optimizer.lr=0.01", "seed=0"])
    fake_job(sweep / "lr1_s0", ["optimizer.lr=1", "seed=0"])  # an earlier sweep's
    fake_sweep(sweep, ["optimizer.lr=0.01,0.1,0.5", "seed=0"], subdir="lr${optimizer.lr}_s${seed}")
    table = write_summary(sweep)
    assert list(table["job"]) == ["lr0.01_s0", "lr0.1_s0", "#2"]
    assert list(table["status"]) == ["completed", "completed", "not started"]
    assert table.attrs["not_in_sweep"] == ["lr1_s0"]


def test_every_failed_job_is_named_in_the_sweep_error_after_the_table(tmp_path, monkeypatch, capsys):
    from omegaconf import OmegaConf

    from grokking import cli as cli_module
    from grokking import sweep_summary

    sweep = tmp_path / "sweep"
    fake_sweep(sweep, ["optimizer.lr=0,0.01,-1,0.1"])
    fake_job(sweep / "0", ["optimizer.lr=0"], test_acc=None)
    fake_job(sweep / "1", ["optimizer.lr=0.01"], test_acc=0.25)
    fake_job(sweep / "2", ["optimizer.lr=-1"], test_acc=None)
    fake_job(sweep / "3", ["optimizer.lr=0.1"], test_acc=0.75, status="diverged")  # a result, not a failure
    monkeypatch.setattr(sweep_summary, "SWEEP_DIR", None)
    monkeypatch.setattr(cli_module, "failed_sweep_line", cli_module.failed_sweep_line)
    sweep_summary.SweepTable().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    err = cli_module.JobFailed("job 0 of the sweep (optimizer.lr=0) failed with exit code 2")
    err.job = "0"

    def sweep_that_failed():
        raise err

    with pytest.raises(SystemExit) as exit:
        cli_module.report_errors(sweep_that_failed)
    assert exit.value.code == 2
    out, stderr = capsys.readouterr()
    assert stderr == (
        "error: 2 of 4 jobs of the sweep failed: job 0 (optimizer.lr=0), job 2 (optimizer.lr=-1); "
        "the other jobs ran (see each job's error above)\n"
    )
    lines = out.splitlines()
    assert lines[0] == f"sweep {sweep}: 4 jobs, 2 failed, 1 completed, 1 diverged"
    assert lines[1].split() == ["job", "overrides", "status", "train_acc", "test_acc"]
    assert [line.split() for line in lines[2:6]] == [
        ["0", "optimizer.lr=0", "failed", "–", "–"],
        ["1", "optimizer.lr=0.01", "completed", "1.000", "0.250"],
        ["2", "optimizer.lr=-1", "failed", "–", "–"],
        ["3", "optimizer.lr=0.1", "diverged", "1.000", "0.750"],
    ]


def test_the_sweep_table_is_a_hydra_callback_at_the_end_of_every_sweep(tmp_path, capsys):
    from hydra.utils import get_class

    from grokking.cli import CONF_DIR
    from grokking.sweep_summary import SweepTable

    callbacks = yaml.safe_load((CONF_DIR / "config.yaml").read_text())["hydra"]["callbacks"]
    assert [get_class(c["_target_"]) for c in callbacks.values()] == [SweepTable]
    sweep = tmp_path / "sweep"
    fake_sweep(sweep, ["seed=0,1"])
    fake_job(sweep / "0", ["seed=0"], seeds=(0,), test_acc=0.5)
    fake_job(sweep / "1", ["seed=1"], seeds=(1,), test_acc=1.0)
    config = yaml.safe_load((sweep / "multirun.yaml").read_text())
    from omegaconf import OmegaConf

    callback = SweepTable()
    callback.on_multirun_start(OmegaConf.create(config))
    callback.on_multirun_end(OmegaConf.create(config))
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out[1:4]] == [
        ["job", "overrides", "status", "train_acc", "test_acc"],
        ["0", "seed=0", "completed", "1.000", "0.500"],
        ["1", "seed=1", "completed", "1.000", "1.000"],
    ]
    assert out[-1] == f"full table and plot: python scripts/summarize.py {sweep}"


def test_a_sweep_table_that_cannot_be_made_does_not_fail_the_sweep(tmp_path, capsys, monkeypatch):
    from omegaconf import OmegaConf

    from grokking import sweep_summary

    monkeypatch.setattr(sweep_summary, "SWEEP_DIR", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    sweep_summary.SweepTable().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(empty)}}}))
    err = capsys.readouterr().err
    assert err.startswith(f"no sweep table for {empty} (") and err.count("\n") == 1
