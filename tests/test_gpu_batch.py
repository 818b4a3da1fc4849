"""scripts/gpu_batch.py: the GPU sitting's parts are valid commands, and the deadline interrupts them."""

import importlib.util
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
    res = check("replicates_long", "study_transformer")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": ok (") == 2 and "cuda_graph=true" in res.stdout
    dry = subprocess.run(
        [sys.executable, "scripts/gpu_batch.py", "--dry-run"], cwd=ROOT, capture_output=True, text=True
    )
    assert all("cuda" in line for line in dry.stdout.splitlines()) and len(dry.stdout.splitlines()) == 5


def test_the_official_parts_list_their_runs():
    official_dir()  # skipped where the snapshot is absent
    res = check("official_fig4", "official_fig6a", "official_fig1bc")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": ok (") == 3 and "--num_epochs 100000" in res.stdout


def test_parts_still_running_at_the_deadline_are_interrupted(tmp_path, monkeypatch):
    batch = load()
    sleeper = [
        "-c",
        "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('checkpointed')\n    raise SystemExit(130)",
    ]
    monkeypatch.setattr(batch, "PARTS", {"slow": (sleeper, ""), "quick": (["-c", "print('done')"], "")})
    start = time.monotonic()
    codes = batch.run_parts(["slow", "quick"], deadline=3, logs=tmp_path)
    assert time.monotonic() - start < 30
    assert codes == {"slow": 130, "quick": 0}
    assert (tmp_path / "slow.log").read_text().strip() == "checkpointed" and "done" in (
        tmp_path / "quick.log"
    ).read_text()
