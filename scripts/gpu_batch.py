"""The long runs that CPUs cannot afford, all at once on one GPU, within a deadline.

    python scripts/gpu_batch.py                  # start every part, stop them at the deadline
    python scripts/gpu_batch.py --deadline 300   # seconds (default 540)
    python scripts/gpu_batch.py --dry-run        # print the parts' commands
    python scripts/gpu_batch.py --check          # each part lists what it would run (no GPU needed)

The parts (``PARTS``) run side by side on the GPU, each a command of this repository:
the official code's long runs (Fig. 4's 100k epochs, Fig. 6a's transformers, Fig. 1c's 80k-epoch
softmax run), every run of Figs. 2 and 9 (20k and 10k epochs; 0.11–0.13 s an epoch for Fig. 2 on
one CPU core beside two others, no checkpoints), Fig. 2's nine runs of this repository on the GPU
(``results/verification/fig2_gpu/``: does the GPU's summation order change the SC order?),
replicates 3–4 of this repository's long runs (Figs. 1 and 4, eager: CUDA graph capture failed
under MPS), and the study's transformer grid (four jobs at a time). Official runs whose converted
results already say completed are skipped, as are this repository's completed runs.
With ``--mps`` the parts share the GPU through CUDA MPS (``nvidia-cuda-mps-control``), so the
kernels of different processes run at once instead of in turns; the daemon is stopped at the end.
Each part's output goes to ``logs/gpu_batch/<part>.log``. ``--copy-to DIR`` then copies every file
under ``results/`` written during the batch into DIR, with the same paths.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# name -> (command, the flag that makes it only list what it would run)
PARTS = {
    "official_long": (
        "scripts/official.py --gpu-runs --device cuda --jobs 7",  # the runs whose manifests say gpu: true
        "--list",
    ),
    "official_fig2": ("scripts/official.py fig2 --device cuda --jobs 9", "--list"),
    "official_fig9": ("scripts/official.py fig9 --device cuda --jobs 9", "--list"),
    "fig2_gpu": ("scripts/reproduce.py fig2 --device cuda --jobs 9 --out results/verification/fig2_gpu", "--list"),
    "replicates_long": ("scripts/reproduce.py fig1 fig4 --replicates 5 --device cuda --jobs 10", "--list"),
    "study_transformer": (
        "scripts/study_baselines.py run --archs transformer --set device=cuda --set launcher=local "
        "--set hydra.launcher.n_jobs=4",
        "--dry-run",
    ),
}


def changed_results(since: float, root: Path = ROOT) -> list[Path]:
    """Files under ``root/results`` written since ``since`` (a ``time.time()``): what the batch made,
    also on a machine whose copy of the repository has no git metadata."""
    return sorted(f for f in (root / "results").rglob("*") if f.is_file() and f.stat().st_mtime >= since)


def start_mps(folder: Path) -> dict[str, str] | None:
    """Start a CUDA MPS daemon whose pipes and logs live in ``folder``; return the environment its
    clients need, or None (with a warning) where the control program is missing or fails."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        print("warning: --mps: nvidia-cuda-mps-control is not on PATH; the parts share the GPU in turns", flush=True)
        return None
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    if subprocess.run([control, "-d"], env={**os.environ, **env}).returncode != 0:
        print("warning: --mps: the MPS daemon did not start; the parts share the GPU in turns", flush=True)
        return None
    print(f"MPS daemon started ({folder})", flush=True)
    return env


def stop_mps(env: dict[str, str]) -> None:
    subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, env={**os.environ, **env}, timeout=30)


def run_parts(names: list[str], deadline: float, logs: Path, env: dict[str, str] | None = None) -> dict[str, int]:
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in names:
        command = PARTS[name][0].split()
        log = open(logs / f"{name}.log", "w")
        procs[name] = subprocess.Popen(
            [PY, *command],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        print(f"started {name}: {' '.join(command)}", flush=True)
    end = time.monotonic() + deadline
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < end:
        time.sleep(2)
    for name, p in procs.items():
        if p.poll() is None:
            print(f"deadline: interrupting {name}", flush=True)
            os.killpg(p.pid, signal.SIGTERM)  # the part and every process it started
    for p in procs.values():
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return {name: p.returncode for name, p in procs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadline", type=float, default=540, help="seconds before unfinished parts are interrupted")
    parser.add_argument("--only", nargs="+", choices=sorted(PARTS), help="run only these parts")
    parser.add_argument("--dry-run", action="store_true", help="print the commands")
    parser.add_argument("--check", action="store_true", help="run each part with its listing flag (no training)")
    parser.add_argument(
        "--copy-to", type=Path, help="copy the files under results/ written during the batch here afterwards"
    )
    parser.add_argument("--logs", type=Path, default=ROOT / "logs" / "gpu_batch")
    parser.add_argument("--mps", action="store_true", help="share the GPU through a CUDA MPS daemon")
    args = parser.parse_args(argv)
    names = args.only or list(PARTS)
    if args.dry_run:
        for name in names:
            print(f"{name}: python {PARTS[name][0]}")
        return 0
    if args.check:
        failed = 0
        for name in names:
            command, listing = PARTS[name]
            res = subprocess.run([PY, *command.split(), listing], cwd=ROOT, capture_output=True, text=True)
            lines = (res.stdout + res.stderr).strip().splitlines()
            print(
                f"{name}: {'ok' if res.returncode == 0 else 'FAILED'} ({len(lines)} lines; {lines[-1] if lines else ''})"[
                    :300
                ]
            )
            failed += res.returncode != 0
        return 1 if failed else 0
    started = time.time()
    mps = start_mps(args.logs / "mps") if args.mps else None
    try:
        codes = run_parts(names, args.deadline, args.logs, mps)
    finally:
        if mps:
            stop_mps(mps)
    for name, code in codes.items():
        print(f"{name}: exit code {code}")
    if args.copy_to:
        files = changed_results(started)
        for f in files:
            target = args.copy_to / f.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        print(f"copied {len(files)} files under results/ to {args.copy_to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
