"""The command line as a user meets it: bad input, kill and resume, Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["dataset.modulus=23", "model.width=32", "device=cpu"]


def cli(args, out_dir, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={out_dir}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, **kw,
    )  # fmt: skip


def start(args, out_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "train.py", *args, f"hydra.run.dir={out_dir}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_for(path: Path, proc, timeout=120):
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "run ended before writing a checkpoint"
        assert time.time() < end
        time.sleep(0.05)


BAD_INPUTS = [
    (["precision=float8"], ["precision=float8", "float16, float32, float64"]),
    (["dataset=cifar"], ["dataset=cifar", "add_mod"]),
    (["dataset.train_fraction=1.5"], ["dataset.train_fraction=1.5", "(0, 1)"]),
    (["dataset.train_fraction=0"], ["dataset.train_fraction=0", "(0, 1)"]),
    (["optimizer.lr=0"], ["optimizer.lr=0", "positive"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1", "positive"]),
    (["epochs=0"], ["epochs=0", "positive"]),
    (["dataset=mnist", "dataset.mnist_dir=EMPTY"], ["dataset.mnist_dir=", "train-images-idx3-ubyte"]),
    (["dataset=mnist", "dataset.n_train=6000"], ["dataset.n_train=6000", "between 1 and 4999"]),
    (["dataset=sparse_parity", "model=transformer"], ["dataset=sparse_parity", "add_mod"]),
    (["optimizer.betas=[0.9,1.5]"], ["optimizer.betas", "[0, 1)"]),
    (["device=tpu"], ["device=tpu", "auto, cpu"]),
]


@pytest.mark.parametrize("args,needles", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_fails_with_one_clear_line_and_no_results(tmp_path, args, needles):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("EMPTY", str(empty)) for a in args]
    out = tmp_path / "run"
    res = cli(args, out)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert not (out / "metrics.csv").exists() and not (out / "summary.json").exists()


def test_default_type_errors_fail_before_training(tmp_path):
    res = cli(["epochs=many"], tmp_path / "run")
    assert res.returncode != 0 and "epochs" in res.stderr
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = [*SMALL, "epochs=3000", "log_every=50", "checkpoint_every=400"]
    ref = cli(args, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = start(args, out)
    wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists(), "run finished before it was killed"
    res = cli(args, out)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()


def test_sigint_checkpoints_marks_interrupted_and_resumes(tmp_path):
    args = [*SMALL, "epochs=3000", "log_every=50", "checkpoint_every=400"]
    out = tmp_path / "run"
    proc = start(args, out)
    wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["epoch"] < 3000
    res = cli(args, out)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert cli(args, tmp_path / "ref").returncode == 0
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()


def test_divergence_exits_nonzero_with_one_line(tmp_path):
    res = cli([*SMALL, "epochs=50", "optimizer=sgd", "optimizer.lr=1e30"], tmp_path / "run")
    assert res.returncode == 3
    assert "diverged at epoch" in res.stderr


def test_completed_run_refused_on_the_command_line(tmp_path):
    args = [*SMALL, "epochs=5"]
    assert cli(args, tmp_path / "run").returncode == 0
    res = cli(args, tmp_path / "run")
    assert res.returncode == 2 and "overwrite=true" in res.stderr


def test_fig15_sweep_with_perpgrad_beside_it_is_one_multirun(tmp_path):
    """Fig. 15 as one Hydra multirun: AdamW weight decays and ⊥AdamW in the same sweep."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "train.py", "-m", "experiment=fig15", "optimizer=adamw,perpgrad", "optimizer.weight_decay=0,2",
         *SMALL, "epochs=3", "log_every=1", f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    import json

    runs = sorted(p for p in tmp_path.iterdir() if (p / "summary.json").is_file())
    assert len(runs) == 4
    configs = [(p / "config.yaml").read_text() for p in runs]
    assert sum("orthogonal: true" in c for c in configs) == 2
    assert all(json.loads((p / "summary.json").read_text())["status"] == "completed" for p in runs)


def loss_options() -> str:
    from grokking.cli import group_options

    return ", ".join(group_options("loss"))


GROUP_SWEEPS = [
    ("loss=choice(softmax,stablemax)", None),
    ("loss=glob(s*)", None),
    ("loss=glob(*,exclude=mse)", None),
    ("loss=softmax,stablemax", None),
    ("+loss=stablemax", None),
    ("loss=choice(softmax,stablmax)", "loss=stablmax is not valid; choose one of: {options}"),
    ("loss=glob(x*)", "loss=glob(x*) matches no option of loss; choose among: {options}"),
    ("loss=range(0,2)", "loss=0 is not valid; choose one of: {options}"),
    ("loss=softmax,stablmax", "loss=stablmax is not valid; choose one of: {options}"),
]


@pytest.mark.parametrize("arg,line", GROUP_SWEEPS, ids=[a for a, _ in GROUP_SWEEPS])
def test_group_sweeps_take_hydras_sweep_syntax(arg, line):
    """``choice()``, ``range()`` and ``glob()`` over a config group are checked option by option,
    as Hydra will expand them; a bad option is named on its own."""
    from grokking.cli import check_group_overrides

    assert check_group_overrides([arg]) == (line and line.format(options=loss_options()))


@pytest.mark.slow
def test_choice_and_glob_sweeps_over_groups_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "train.py", "-m", "loss=choice(softmax,stablemax)", "optimizer=glob(perp_*)", *SMALL,
         "epochs=3", "log_every=1", "cpu_kernel=torch", f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = [line.split() for line in res.stdout.splitlines() if line[:1].isdigit()]
    assert [row[1:4] for row in table if len(row) > 3] == [
        ["loss=softmax", "optimizer=perp_adamw", "completed"],
        ["loss=softmax", "optimizer=perp_sgd", "completed"],
        ["loss=stablemax", "optimizer=perp_adamw", "completed"],
        ["loss=stablemax", "optimizer=perp_sgd", "completed"],
    ]
