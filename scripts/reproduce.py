"""Run the experiments of ``reproduction/experiments/<experiment>.yaml`` into ``results/<experiment>/<run>/``.

    python scripts/reproduce.py fig2                 # every run of Fig. 2
    python scripts/reproduce.py fig2 fig8 --jobs 2   # two runs at a time
    python scripts/reproduce.py all --device cuda    # everything, on a GPU
    python scripts/reproduce.py fig1 --device cuda --cuda-graph   # one run at a time, each 4-5x faster
    python scripts/reproduce.py --list               # what would run
    python scripts/reproduce.py fig2 --replicates 5  # add replicates 1-4 of every Fig. 2 run
    python scripts/reproduce.py fig2 --replicates target  # each run up to its manifest's target
    python scripts/reproduce.py fig13 --print-multirun    # the same runs as python train.py -m commands

The runs, their replicate targets and post-processing steps are the manifests' (``reproduction/manifest.py``).
Replicate k >= 1 of a run changes both the train/test split and the initialization
(``dataset.seed=k`` and ``seed=k``; a run that trains several init seeds at once gets seeds shifted
by 1000 k) and lies in ``results/replicates/<k>/<experiment>/<run>/``; replicate 0 is the run itself.
Runs that only vary the init seed of another run (an explicit ``seed=`` or ``seeds=``) are not
replicated.

Each run is ``python train.py <overrides>`` with its own run directory, so an interrupted
reproduction resumes where it stopped (completed runs are skipped). Checkpoints stay in the run
directories (git ignores them); ``results/`` keeps config.yaml, metrics.csv and summary.json.
An experiment with a ``postprocess`` step (Figs. 7 and 12) writes small CSV files from the saved
parameters once its runs are done.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reproduction.manifest import Experiment, ManifestError, experiments, grid_sweeps  # noqa: E402

# experiment -> run name -> overrides (each manifest's runs, reproduction/experiments/<experiment>.yaml)
RUNS: dict[str, dict[str, list[str]]] = {name: exp.overrides() for name, exp in experiments().items() if exp.runs}


def experiment_seeds(overrides: list[str]) -> list[int] | None:
    """The ``seeds`` list a run trains at once (from its overrides or its experiment file), if any."""
    for o in reversed(overrides):
        if o.startswith("seeds="):
            return [int(v) for v in o.removeprefix("seeds=").strip("[]").split(",") if v.strip()]
    for o in overrides:
        if o.startswith("experiment="):
            path = ROOT / "conf" / "experiment" / f"{o.removeprefix('experiment=')}.yaml"
            for line in path.read_text().splitlines():
                if line.startswith("seeds:") and "[" in line:
                    return [int(v) for v in line.split("[", 1)[1].split("]")[0].split(",") if v.strip()]
    return None


def replicate_overrides(overrides: list[str], k: int) -> list[str]:
    """Overrides of replicate ``k``: another split and another initialization."""
    if k == 0:
        return overrides
    seeds = experiment_seeds(overrides)
    init = [f"seeds=[{','.join(str(s + 1000 * k) for s in seeds)}]"] if seeds else [f"seed={k}"]
    return [*[o for o in overrides if not o.startswith(("seeds=", "seed="))], f"dataset.seed={k}", *init]


def replicated(overrides: list[str]) -> bool:
    """Whether a run gets replicates: not one that only varies another run's init seed."""
    return not any(o.startswith(("seed=", "seeds=")) for o in overrides)


def replicate_root(out: Path, k: int) -> Path:
    return out if k == 0 else out / "replicates" / str(k)


def committed_minutes(results: Path, figure: str, name: str) -> tuple[float, int, int] | None:
    """The median wall time in minutes of the committed runs of ``figure/name`` (replicate 0 and
    every ``replicates/<k>/``) that finished on the CPU with one thread, how many there are and
    their epochs; None where there are none. The runs were made beside another job (see :func:`beside_factor`)."""
    from reproduction.results import Replicate, replicate_indices  # lazily: grokking imports torch

    minutes, epochs = [], 0
    for folder in (Replicate(results, k) / figure / name for k in replicate_indices(results)):
        try:
            s = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        one_thread_cpu = s.get("device") == "cpu" and s.get("torch_threads") == 1
        if s.get("status") == "completed" and one_thread_cpu and s.get("wall_time_s") and s.get("epochs"):
            minutes.append(s["wall_time_s"] / 60)
            epochs = s["epochs"]
    return (statistics.median(minutes), len(minutes), epochs) if minutes else None


def beside_factor(results: Path, times: dict[tuple[str, str], dict[str, str]]) -> tuple[float, int]:
    """How much longer a run takes beside another job than the benchmark's idle core: the median,
    over runs that have both a benchmark row and committed one-thread CPU runs of the same length,
    of committed wall time / benchmark minutes, and how many runs that is (1.0 and 0 where none)."""
    ratios = []
    for (fig, name), row in times.items():
        committed = committed_minutes(results, fig, name)
        if committed is not None and committed[2] == int(row["epochs"]) and float(row["minutes"]) > 0:
            ratios.append(committed[0] / float(row["minutes"]))
    return (statistics.median(ratios), len(ratios)) if ratios else (1.0, 0)


def print_plan(
    jobs: list[tuple[str, str, list[str], Path]], results: Path = ROOT / "results", out: Path | None = None
) -> None:
    """Runs still to make, in CPU minutes on one idle core: those ``results/figure_times_cpu.csv``
    measured for one run (epochs x ms/epoch on this repository's CPU path; a run of several seeds
    counts them all), or else the median wall time of the run's committed one-thread CPU replicates,
    which were made beside another job and are brought to the idle scale by :func:`beside_factor`.
    The total is also given on the beside-another-job scale, the one two jobs at a time pay. A damaged
    run (its files do not parse, :func:`reproduction.results.damage`) is planned again. ``out`` is
    the folder the jobs write into (replicate 0 is ``out`` itself)."""
    import csv

    times = {(r["figure"], r["run"]): r for r in csv.DictReader((results / "figure_times_cpu.csv").open())}
    factor, pairs = beside_factor(results, times)
    total, unknown = 0.0, []
    print(f"{'run':42} {'replicate':>9} {'epochs':>7} {'ms/epoch':>9} {'minutes':>8}  timed by")
    base = out if out is not None else results
    for fig, name, _, root in jobs:
        if status(root / fig / name) in ("completed", "diverged"):
            continue
        row, k = times.get((fig, name)), "0" if root == base else root.name
        label = f"{fig}/{name}" + (" (damaged)" if damage(root / fig / name) else "")
        if row is not None:
            epochs, minutes, source = int(row["epochs"]), float(row["minutes"]), "benchmark"
        elif (committed := committed_minutes(results, fig, name)) is not None:
            minutes, n, epochs = committed
            minutes /= factor
            source = f"median of {n} committed" + (f" / {factor:.2f}" if pairs else "")
        else:
            unknown.append(f"{fig}/{name}")
            continue
        total += minutes
        print(f"{label:42} {k:>9} {epochs:>7} {minutes * 60000 / epochs:9.1f} {minutes:8.1f}  {source}")
    print(f"total: {total / 60:.1f} CPU-hours on an idle core", end="")
    if pairs:
        print(
            f", {total * factor / 60:.1f} beside another job (x {factor:.2f}: the median slowdown of"
            f" {pairs} run{'s' * (pairs > 1)} timed both ways)",
            end="",
        )
    print(f"; no timing for {len(unknown)} run{'s' * (len(unknown) > 1)}: {', '.join(unknown)}" if unknown else "")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def status(run_dir: Path) -> str | None:
    """The run's status from its summary.json; None where it has none or it cannot be read (the run
    is then handed to train.py, which resumes it or says in one line what is wrong), and None for a
    damaged run (its summary says it finished, but its metrics.csv does not parse): it is run again."""
    path = run_dir / "summary.json"
    try:
        found = json.loads(path.read_text())["status"] if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if found in ("completed", "diverged") and damage(run_dir) else found


def damage(run_dir: Path) -> str | None:
    """Why the run in ``run_dir`` is damaged, or None (:func:`reproduction.results.damage`)."""
    from reproduction.results import damage as why  # lazily: reading results needs pandas

    return why(run_dir)


def run_one(
    figure: str, name: str, overrides: list[str], out: Path, device: str, threads: int
) -> tuple[str, int, float]:
    run_dir = out / figure / name
    label = f"{figure}/{name}"
    if status(run_dir) == "completed":
        return label, 0, 0.0
    if why := damage(run_dir):  # its summary says it finished, but its results are unreadable: redo it
        print(f"{label}: damaged ({why}); running it again", flush=True)
        overrides = [*overrides, "overwrite=true"]
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides, f"device={device}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.time()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "train.log", "w") as log:
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    except OSError as e:  # a run directory that is a file, or cannot be written: this run fails, the rest go on
        print(f"error: {label}: {e.filename or run_dir} cannot be used ({e.strerror})", file=sys.stderr)
        return label, 2, time.time() - start
    return label, code, time.time() - start


def postprocess(exp: Experiment, out: Path) -> None:
    """The experiment's ``postprocess`` step (``module:function``), given its run folders and its folder."""
    import importlib

    module, function = exp.postprocess.split(":")
    getattr(importlib.import_module(module), function)(
        {name: out / exp.name / name for name in exp.runs}, out / exp.name
    )


def multirun_commands(exp: Experiment, replicates: int, out: Path) -> list[str]:
    """``python train.py -m`` commands that make the experiment's runs in the layout of this script:
    one per plain-product grid and replicate, one per other run, each job writing
    ``<out>/[replicates/<k>/]<experiment>/<run>/`` (Hydra's ``hydra.sweep.dir`` and
    ``hydra.sweep.subdir``). A multirun skips the completed runs of the same config and resumes the
    others, as this script does."""

    import shlex

    lines = []
    for k in range(replicates):
        root = replicate_root(out, k) / exp.name
        where = os.path.relpath(root, ROOT) if root.resolve().is_relative_to(ROOT) else str(root)
        for overrides, swept, subdir in grid_sweeps(exp):
            if k and not replicated(list(overrides)):
                continue
            fixed = replicate_overrides(list(overrides), k)
            args = [*fixed, *swept, f"hydra.sweep.dir={where}", f"hydra.sweep.subdir={subdir}"]
            lines.append(" ".join(["python train.py -m", *map(shlex.quote, args)]))
    return lines


def replicate_count(text: str) -> int | str:
    """``--replicates``: a positive number, or ``target`` (each run's target from its manifest)."""
    if text == "target":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        fail(f"--replicates {text} is not valid; expected a positive number (1 = the run itself) or target")
    return n


def main(argv: list[str] | None = None) -> None:
    try:
        table = {name: exp for name, exp in experiments().items() if exp.runs}
    except ManifestError as e:
        fail(str(e))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", help=f"experiments to run ({', '.join(table)}, or all)")
    parser.add_argument("--only", nargs="*", help="run only these runs: NAME or EXPERIMENT/NAME (see --list)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (default: cores / jobs)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    parser.add_argument(
        "--cuda-graph", action="store_true", help="on CUDA: replay non-logging epochs as a CUDA graph (4-5x faster)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results", help="results folder")
    parser.add_argument(
        "--replicates",
        type=replicate_count,
        default=1,
        help="independent replicates per run, the run itself included (default 1), or target: each run's"
        " target from its manifest",
    )
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    parser.add_argument(
        "--print-multirun",
        action="store_true",
        help="print the python train.py -m commands that make the same runs in the same folders, and exit",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the CPU time of the runs still to make, idle and beside another job",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        fail(f"--jobs {args.jobs} is not valid; expected a positive number of runs at a time")
    if args.threads < 0:
        fail(f"--threads {args.threads} is not valid; expected a positive number (0 = cores / jobs)")

    figures = list(table) if args.figures in ([], ["all"]) else args.figures
    unknown = [f for f in figures if f not in table]
    if unknown:
        fail(f"unknown experiment {unknown[0]}; choose from: {', '.join([*table, 'all'])}")
    runs = [(fig, run) for fig in figures for run in table[fig].runs.values()]
    if args.only:
        known = {run.name for _, run in runs} | {f"{fig}/{run.name}" for fig, run in runs}
        if unknown := [o for o in args.only if o not in known]:
            fail(f"--only {unknown[0]} is not a run of {' '.join(figures)}; see --list for the choices")
    if args.print_multirun:
        for fig in figures:
            n = max(r.replicates for r in table[fig].runs.values()) if args.replicates == "target" else args.replicates
            print("\n".join(multirun_commands(table[fig], n, args.out)))
        return
    todo = [(fig, run) for fig, run in runs if not args.only or {run.name, f"{fig}/{run.name}"} & set(args.only)]
    extra = ["cuda_graph=true"] if args.cuda_graph else []
    jobs = [
        (fig, run.name, [*replicate_overrides(list(run.overrides), k), *extra], replicate_root(args.out, k))
        for k in range(
            max((r.replicates for _, r in todo), default=1) if args.replicates == "target" else args.replicates
        )
        for fig, run in todo
        if k == 0 or (run.replicated and (args.replicates != "target" or k < run.replicates))
    ]
    if args.list:
        for fig, name, overrides, out in jobs:
            where = "" if out == args.out else f" [{out.relative_to(args.out)}]"
            print(f"{fig}/{name}{where}: python train.py {' '.join(overrides)}")
        return
    if args.plan:
        print_plan(jobs, out=args.out)
        return
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, fig, name, ov, out, args.device, threads) for fig, name, ov, out in jobs]
        for future in futures:
            label, code, seconds = future.result()
            print(f"{label}: {'ok' if code == 0 else f'exit {code}'} ({seconds:.0f} s)", flush=True)
            if code != 0:
                failed.append(label)
    for fig in dict.fromkeys(fig for fig, _ in todo):  # exports from the experiment's runs, once all are done
        exp = table[fig]
        if exp.postprocess and all(status(args.out / fig / name) == "completed" for name in exp.runs):
            postprocess(exp, args.out)
    if failed:
        sys.exit(f"{len(failed)} runs failed: {', '.join(failed)} (see their train.log)")


if __name__ == "__main__":
    main()
