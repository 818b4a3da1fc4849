"""scripts/gpu_batch.py: the GPU sitting's parts are valid commands, and the deadline interrupts them."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from official import official_dir

ROOT = Path(__file__).resolve().parent.parent


def load():
    spec = importlib.util.spec_from_file_location("gpu_batch", ROOT / "scripts" / "gpu_batch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(*parts):
    return subprocess.run(
        [sys.executable, "scripts/gpu_batch.py", "--check", "--only", *parts],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_this_repositorys_parts_list_their_runs_without_a_gpu():
    res = check("replicates_long", "study_transformer", "fig2_gpu")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": ok (") == 3 and "[replicates/4]" in res.stdout
    assert "cuda_graph=true" not in res.stdout  # eager: graph capture failed under MPS on an H200
    dry = subprocess.run(
        [sys.executable, "scripts/gpu_batch.py", "--dry-run"], cwd=ROOT, capture_output=True, text=True
    )
    assert all("cuda" in line for line in dry.stdout.splitlines()) and len(dry.stdout.splitlines()) == len(load().PARTS)


def test_the_official_parts_list_their_runs():
    official_dir()  # skipped where the snapshot is absent
    res = check("official_long", "official_fig2", "official_fig9")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": ok (") == 3 and "official_long: ok (7 lines" in res.stdout
    assert "official_fig2: ok (9 lines; fig2/frac0.7_float64" in res.stdout


SLEEPER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # a run the part started
def stop(*_):
    child.wait(timeout=20)  # the group's SIGTERM reached it too
    print("checkpointed", flush=True)
    sys.exit(130)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(120)
"""


def test_parts_still_running_at_the_deadline_get_sigterm_with_every_process_they_started(tmp_path, monkeypatch):
    batch = load()
    (tmp_path / "slow.py").write_text(SLEEPER)
    (tmp_path / "quick.py").write_text("print('done')")
    monkeypatch.setattr(
        batch, "PARTS", {"slow": (str(tmp_path / "slow.py"), ""), "quick": (str(tmp_path / "quick.py"), "")}
    )
    start = time.monotonic()
    codes = batch.run_parts(["slow", "quick"], deadline=10, logs=tmp_path / "logs")
    assert time.monotonic() - start < 60
    assert codes == {"slow": 130, "quick": 0}
    assert (tmp_path / "logs" / "slow.log").read_text().split() == ["ready", "checkpointed"]
    assert "done" in (tmp_path / "logs" / "quick.log").read_text()


def test_parts_get_the_mps_environment_and_a_missing_daemon_is_a_warning(tmp_path, monkeypatch, capsys):
    batch = load()
    monkeypatch.setattr(batch.shutil, "which", lambda name: None)
    assert batch.start_mps(tmp_path / "mps") is None
    assert capsys.readouterr().out.startswith("warning: --mps: nvidia-cuda-mps-control is not on PATH")
    (tmp_path / "env.py").write_text("import os; print(os.environ['CUDA_MPS_PIPE_DIRECTORY'])")
    monkeypatch.setattr(batch, "PARTS", {"env": (str(tmp_path / "env.py"), "")})
    codes = batch.run_parts(["env"], deadline=30, logs=tmp_path / "logs", env={"CUDA_MPS_PIPE_DIRECTORY": "/pipes"})
    assert codes == {"env": 0} and (tmp_path / "logs" / "env.log").read_text().strip() == "/pipes"


def test_copy_to_takes_the_results_written_during_the_batch(tmp_path):
    batch = load()
    old = tmp_path / "results" / "fig1" / "a" / "metrics.csv"
    old.parent.mkdir(parents=True)
    old.write_text("old")
    os.utime(old, (1_000, 1_000))
    new = tmp_path / "results" / "replicates" / "3" / "fig1" / "b" / "summary.json"
    new.parent.mkdir(parents=True)
    new.write_text("{}")
    assert batch.changed_results(since=2_000, root=tmp_path) == [new]
