"""Run the authors' official code with the flags of our runs, into ``results/official/<commit>/``.

    python scripts/official.py --list                         # the runs and their official flags
    python scripts/official.py fig6 --jobs 2 --threads 1      # Fig. 6's runs, two at a time
    python scripts/official.py fig2 --only frac0.7_float32    # one run
    python scripts/official.py fig1 --official-dir ../shared/official/release-0cc9e8d
    python scripts/official.py fig2 --only frac0.4_float64 --until sc_fraction=0.5  # stop at SC onset

Each seed runs in its own scratch copy of the snapshot (``runs/official/<commit>/<figure>/<run>/
seed<k>/``, ignored by git), through a wrapper that sets the thread count (the script asks for 5)
and stubs ``torchvision`` (imported, unused). The snapshot folder itself is never written to. A
seed whose scratch run finished is not run again, so an interrupted batch resumes by seed (the
official code has no checkpoints: an interrupted seed starts over), and a run whose converted
results say it completed with these seeds is skipped. When every seed of a run has
finished, its long-format log is converted into ``results/official/<commit>/<figure>/<run>/``
(``metrics.csv`` in our columns, ``summary.json``, ``config.yaml`` with the flags).

``--until COLUMN=VALUE`` (repeatable) stops each seed once every such onset is in its log (two
logged epochs in a row, the rule the claims read): a run whose question is an onset, e.g. when SC
passes 50 %, need not run to its last epoch. Its status is then ``stopped`` and the claims read it
as the start of its trajectory: its onsets, never its end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproduction.official import (  # noqa: E402
    DEFAULT_DIR,
    OFFICIAL_RUNS,
    PARTIAL,
    OfficialRun,
    commit_of,
    flags_for,
    is_release,
    onsets_reached,
    parse_until,
    prepare_scratch,
    read_long_metrics,
    seeds_for,
    write_result,
)
from reproduction.results import seed_status  # noqa: E402

POLL_S = 10  # how often a seed with --until conditions has its log read


def scratch_dirs(run_scratch: Path, seeds) -> dict[int, Path]:
    """Each seed's scratch copy of the snapshot under the run's scratch folder."""
    return {seed: run_scratch / f"seed{seed}" for seed in seeds}


def done(scratch: Path) -> bool:
    """Whether the seed's scratch run finished, or was stopped once its --until onsets were in."""
    info_path = scratch / "run.json"
    if not info_path.is_file():
        return False
    info = json.loads(info_path.read_text())
    return info.get("returncode") == 0 or bool(info.get("stopped"))


def status_text(summary: dict) -> str:
    """A converted run's status, with each seed's where they differ: ``stopped (seed 42 completed,
    0 stopped, 1 stopped)``."""
    seeds = {k: seed_status(summary, k) for k in summary.get("per_seed", {})}
    if len(set(seeds.values())) <= 1:
        return summary["status"]
    return f"{summary['status']} (seed {', '.join(f'{k} {v}' for k, v in seeds.items())})"


def completed(result: Path, seeds) -> bool:
    """Whether ``result`` holds a converted run in which every one of ``seeds`` finished (a seed's
    own status, else the run's)."""
    summary = result / "summary.json"
    if not summary.is_file():
        return False
    info = json.loads(summary.read_text())
    held = set(info.get("per_seed") or ()) | {str(s) for s in info.get("seeds") or ()}
    return all(str(s) in held and seed_status(info, str(s)) == "completed" for s in seeds)


def held(result: Path, run: OfficialRun, release: bool) -> set[int]:
    """Seeds that ``result`` already holds completed with the flags they would run with now: they
    are not run again (a fresh checkout has no scratch folders, only the converted results)."""
    summary = result / "summary.json"
    if not summary.is_file():
        return set()
    info = json.loads(summary.read_text())
    return {
        int(k)
        for k, v in (info.get("per_seed") or {}).items()
        if seed_status(info, k) == "completed" and v.get("flags") == flags_for(run, int(k), release)
    }


def wait(process: subprocess.Popen, partial: Path, until: dict[str, float], log_frequency: int) -> dict | None:
    """Wait for the official process; with ``until``, stop it once every onset is in its log and
    return what was reached (None when it ended by itself)."""
    while True:
        try:
            process.wait(timeout=POLL_S if until else None)
            return None
        except subprocess.TimeoutExpired:
            pass
        try:
            rows = read_long_metrics(partial, log_frequency) if partial.is_file() else None
        except (OSError, ValueError, KeyError):  # a log being replaced, or not a row yet
            rows = None
        found = onsets_reached(rows, until) if rows is not None and not rows.empty else None
        if found is not None:
            process.terminate()
            process.wait()
            return {
                "until": {c: f">= {v}" for c, v in until.items()},
                "onsets": found,
                "last_logged_epoch": int(rows.epoch.max()),
            }


def run_seed(
    official_dir: Path,
    scratch: Path,
    flags: list[str],
    threads: int,
    device: str,
    until: dict[str, float] | None = None,
    log_frequency: int = 1,
) -> tuple[int, float]:
    if done(scratch):
        return 0, 0.0
    wrapper = prepare_scratch(official_dir, scratch, flags, threads)
    import torch

    if device.startswith("cuda"):
        device_name = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        device_name = platform.processor() or "cpu"
    start = {"flags": flags, "threads": threads, "device": device_name, "torch": torch.__version__}
    (scratch / "started.json").write_text(json.dumps({**start, "started_unix": time.time()}) + "\n")
    (scratch / PARTIAL).unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = str(scratch)
    started = time.time()
    with open(scratch / "stdout.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, wrapper.name], cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        stopped = wait(process, scratch / PARTIAL, until or {}, log_frequency)
    wall = time.time() - started
    code = process.returncode
    info = {**start, "returncode": code, "wall_time_s": wall, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if stopped:
        info["stopped"] = stopped
    (scratch / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return (0 if stopped else code), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", help=f"figures ({', '.join(OFFICIAL_RUNS)}, or all)")
    parser.add_argument("--only", nargs="*", help="only these runs: NAME or FIGURE/NAME (see --list)")
    parser.add_argument("--official-dir", type=Path, default=DEFAULT_DIR, help="snapshot folder (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at a time (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=0,
        help="the first N seeds of each run (default: its own); past them 0, 1, 2, ... (42 then 0-3 for five)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "official", help="results folder")
    parser.add_argument("--scratch", type=Path, default=ROOT / "runs" / "official", help="scratch folder")
    parser.add_argument("--list", action="store_true", help="print the runs and their flags, and exit")
    parser.add_argument(
        "--gpu-runs", action="store_true", help="only the runs too long for CPUs (gpu: true in their manifest)"
    )
    parser.add_argument(
        "--collect", action="store_true", help="only convert what the scratch runs hold, stopped seeds included"
    )
    parser.add_argument(
        "--until",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="stop each seed once COLUMN >= VALUE has its onset (e.g. sc_fraction=0.5); repeat for several",
    )
    args = parser.parse_args()
    try:
        until = dict(parse_until(u) for u in args.until)
    except ValueError as e:
        sys.exit(f"error: {e}")

    if not (args.official_dir / "grokking_experiments.py").is_file():
        sys.exit(
            f"error: no official snapshot at {args.official_dir}; clone github.com/LucasPrietoAl/"
            "grokking-at-the-edge-of-numerical-stability and check out 720d244, then pass --official-dir"
        )
    if args.jobs < 1 or args.threads < 1:
        sys.exit(f"error: --jobs and --threads must be >= 1 (got {args.jobs}, {args.threads})")
    figures = list(OFFICIAL_RUNS) if args.figures in ([], ["all"]) else args.figures
    if unknown := [f for f in figures if f not in OFFICIAL_RUNS]:
        sys.exit(f"error: unknown figure {unknown[0]}; choose from: {', '.join([*OFFICIAL_RUNS, 'all'])}")
    release = is_release(args.official_dir)
    commit = commit_of(args.official_dir)
    runs: list[tuple[str, str, OfficialRun]] = [
        (fig, name, run)
        for fig in figures
        for name, run in OFFICIAL_RUNS[fig].items()
        if not (release and run.fixed_only)
    ]
    if args.only:
        known = {n for _, n, _ in runs} | {f"{f}/{n}" for f, n, _ in runs}
        if bad := [o for o in args.only if o not in known]:
            sys.exit(f"error: --only {bad[0]} is not a run of {' '.join(figures)}; see --list for the choices")
        runs = [(f, n, r) for f, n, r in runs if {n, f"{f}/{n}"} & set(args.only)]
    if args.gpu_runs:
        runs = [(f, n, r) for f, n, r in runs if r.gpu]
    for fig, name, run in runs:
        if run.crashes:
            print(f"{fig}/{name}: skipped, {run.note}")
    runs = [(fig, name, run) for fig, name, run in runs if not run.crashes]
    if args.seeds < 0:
        sys.exit(f"error: --seeds {args.seeds} is negative; give a count N >= 1 (or 0 for each run's own seeds)")
    seeds_of = {(f, n): seeds_for(r, args.seeds) for f, n, r in runs}
    if args.list:
        for fig, name, run in runs:
            print(f"{fig}/{name} seeds {list(seeds_of[fig, name])}: {' '.join(flags_for(run, 0, release)[:-4])}")
        return
    if args.collect:
        for fig, name, run in runs:
            dirs = scratch_dirs(args.scratch / commit / fig / name, seeds_of[fig, name])
            dirs = {s: d for s, d in dirs.items() if (d / "run.json").is_file() or (d / PARTIAL).is_file()}
            if dirs:
                s = write_result(dirs, args.out / commit / fig / name, fig, name, run, args.official_dir)
                print(f"{fig}/{name}: {status_text(s)} at epoch {s['epoch']} -> {args.out / commit / fig / name}")
        return
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit(f"error: --device {args.device}: torch {torch.__version__} sees no CUDA device; use --device cpu")
    finished = [(f, n) for f, n, _ in runs if completed(args.out / commit / f / n, seeds_of[f, n])]
    for fig, name in finished:
        print(f"{fig}/{name}: skipped, {args.out / commit / fig / name} holds it completed with these seeds")
    runs = [(f, n, r) for f, n, r in runs if (f, n) not in finished]
    device = args.device
    kept = {(f, n): held(args.out / commit / f / n, r, release) if device == "cpu" else set() for f, n, r in runs}
    for (fig, name), seeds in kept.items():
        if seeds:
            print(f"{fig}/{name}: seeds {sorted(seeds)} kept, {args.out / commit / fig / name} holds them completed")
    seeds_of = {k: tuple(s for s in v if s not in kept.get(k, ())) for k, v in seeds_of.items()}
    jobs = [
        (fig, name, run, seed, scratch)
        for fig, name, run in runs
        for seed, scratch in scratch_dirs(args.scratch / commit / fig / name, seeds_of[fig, name]).items()
    ]
    print(
        f"official {commit}: {len(jobs)} seeds of {len(runs)} runs, {args.jobs} at a time, {args.threads} threads each"
    )
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            pool.submit(
                run_seed,
                args.official_dir,
                scratch,
                flags_for(run, seed, release)[:-1] + [device],
                args.threads,
                device,
                until,
                run.log_frequency,
            ): (fig, name, run, seed)
            for fig, name, run, seed, scratch in jobs
        }
        failed, left = [], {(fig, name): len(seeds_of[fig, name]) for fig, name, _ in runs}
        for future, (fig, name, run, seed) in futures.items():
            code, wall = future.result()
            print(f"{fig}/{name} seed {seed}: {'ok' if code == 0 else f'exit {code}'} ({wall:.0f} s)", flush=True)
            if code:
                failed.append(f"{fig}/{name}/seed{seed}")
            left[fig, name] -= 1
            dirs = scratch_dirs(args.scratch / commit / fig / name, seeds_of[fig, name])
            if not left[fig, name] and all(done(d) for d in dirs.values()):  # converted as its last seed ends
                s = write_result(dirs, args.out / commit / fig / name, fig, name, run, args.official_dir)
                print(f"wrote {args.out / commit / fig / name} ({status_text(s)})", flush=True)
    if failed:
        sys.exit(f"error: {len(failed)} official runs failed: {', '.join(failed)} (see their stdout.log)")


if __name__ == "__main__":
    main()
