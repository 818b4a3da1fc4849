"""Run the experiments behind each paper figure into ``results/<figure>/<run>/``.

    python scripts/reproduce.py fig2                 # every run of Fig. 2
    python scripts/reproduce.py fig2 fig8 --jobs 2   # two runs at a time
    python scripts/reproduce.py all --device cuda    # everything, on a GPU
    python scripts/reproduce.py fig1 --device cuda --cuda-graph   # one run at a time, each 4-5x faster
    python scripts/reproduce.py --list               # what would run
    python scripts/reproduce.py fig2 --replicates 5  # add replicates 1-4 of every Fig. 2 run

Replicate k >= 1 of a run changes both the train/test split and the initialization
(``dataset.seed=k`` and ``seed=k``; a run that trains several init seeds at once gets seeds shifted
by 1000 k) and lies in ``results/replicates/<k>/<figure>/<run>/``; replicate 0 is the run itself.
Runs that only vary the init seed of another run (an explicit ``seed=`` or ``seeds=``) are not
replicated.

Each run is ``python train.py <overrides>`` with its own run directory, so an interrupted
reproduction resumes where it stopped (completed runs are skipped). Checkpoints stay in the run
directories (git ignores them); ``results/`` keeps config.yaml, metrics.csv and summary.json.
Figures 7 and 12 add a post-processing step that writes small CSV files from the saved parameters
(Fig. 12 analyses its own two short runs: ⊥AdamW, which groks without weight decay, and AdamW,
which memorizes).
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

# figure -> run name -> overrides (on top of the figure's conf/experiment file)
RUNS: dict[str, dict[str, list[str]]] = {
    "fig1": {
        "a_perp_adamw": ["experiment=fig1a"],
        "b_stablemax": ["experiment=fig1b"],
        # two more init seeds: is the late onset of Fig. 1b seed-to-seed spread?
        "b_stablemax_seed1": ["experiment=fig1b", "seed=1"],
        "b_stablemax_seed2": ["experiment=fig1b", "seed=2"],
        "c_softmax": ["experiment=fig1c"],
    },
    "fig2": {
        f"frac{frac}_{prec}": [
            "experiment=fig2",
            f"dataset.train_fraction={frac}",
            f"precision={prec}",
            *(["optimizer.eps=1e-30"] if frac == 0.4 else []),
        ]
        for frac in (0.4, 0.6, 0.7)
        for prec in ("float16", "float32", "float64")
    },
    # Fig. 2's 70 % setting with the loss in bfloat16, three replicates (split seed = init seed)
    "fig2_bf16": {
        f"seed{s}": [
            "experiment=fig2",
            "dataset.train_fraction=0.7",
            "precision=bfloat16",
            f"seed={s}",
            f"dataset.seed={s}",
        ]
        for s in (0, 1, 2)
    },
    "fig4": {
        "add_mod": ["experiment=fig4", "dataset=add_mod"],
        "mul_mod": ["experiment=fig4", "dataset=mul_mod"],
        "sparse_parity": ["experiment=fig4", "dataset=sparse_parity", "model.bias=true", "optimizer.eps=1e-18"],
        "input_one_hot": ["experiment=fig4_input", "dataset=add_mod"],
        "input_binary": ["experiment=fig4_input", "dataset=add_mod_binary"],
        "input_base2": [
            "experiment=fig4_input",
            "dataset=add_mod_binary",
            "dataset.code=binary",
            "dataset.code_bits=7",
        ],
    },
    "fig5": {
        "mlp": ["experiment=fig5"],
        "mlp_bias": ["experiment=fig5", "model.bias=true"],
        "transformer": ["experiment=fig5", "model=transformer"],
    },
    "fig6": {
        "a_adamw": ["experiment=fig6a"],
        "a_adamw_wd": ["experiment=fig6a", "optimizer.weight_decay=1.5"],
        "a_perp_adamw": ["experiment=fig6a", "optimizer=perp_adamw", "optimizer.lr=0.001"],
        "b_adamw": ["experiment=fig6b"],
        "b_perp_adamw": ["experiment=fig6b", "optimizer=perp_adamw", "optimizer.lr=0.005"],
        "b_perp_sgd": [
            "experiment=fig6b",
            "optimizer=perp_sgd",
            "optimizer.lr=10",
            "loss=stablemax",
            "precision=float64",
            "precision.model_dtype=float64",
        ],
    },
    "fig7": {
        "sgd": ["experiment=fig7"],
        "sgd_wd": ["experiment=fig7", "optimizer.weight_decay=1e-4"],
        "perp_sgd": ["experiment=fig7", "optimizer=perp_sgd", "precision.model_dtype=float64"],
    },
    "fig8": {
        "baseline": ["experiment=fig8"],
        "intervention": ["experiment=fig8", "sc_intervention_epoch=6000"],
    },
    "fig9": {
        f"{name}frac{frac}_{prec}": [
            "experiment=fig9",
            f"dataset.train_fraction={frac}",
            f"precision={prec}",
            f"optimizer.lr={3.0 if frac == 0.4 else 4.0}",
            *plain,
        ]
        # the paper's normalized SGD, and the plain SGD (momentum 0.2) that the authors' run script runs
        for name, plain in (("", []), ("plain_sgd_", ["optimizer.normalize_grad=false", "optimizer.momentum=0.2"]))
        for frac in (0.4, 0.6, 0.7)
        for prec in ("float16", "float32", "float64")
    },
    "fig10": {"sgd": ["experiment=fig10"]},
    "fig11": {
        "baseline": ["experiment=fig11"],
        "logit_penalty": ["experiment=fig11", "loss.logit_norm_penalty=0.001"],
        "taylor": ["experiment=fig11", "loss=taylor"],
    },
    "fig13": {f"depth{d}": ["experiment=fig13", f"model.depth={d}"] for d in (1, 2, 3)},
    "fig14": {
        "no_wd": ["experiment=fig14"],
        "wd": ["experiment=fig14", "optimizer.weight_decay=1.0"],
    },
    "fig15": {
        **{f"wd{wd}": ["experiment=fig15", f"optimizer.weight_decay={wd}"] for wd in (2, 4, 6, 8)},
        "perp_adamw": ["experiment=fig15", "optimizer=perp_adamw", "optimizer.lr=0.002"],
        # the paper's lr is unknown: the same sweep at lr 0.005 (where ⊥AdamW works in Fig. 6b)
        **{
            f"lr0.005_wd{wd}": ["experiment=fig15", "optimizer.lr=0.005", f"optimizer.weight_decay={wd}"]
            for wd in (2, 4, 6, 8)
        },
        "lr0.005_perp_adamw": ["experiment=fig15", "optimizer=perp_adamw", "optimizer.lr=0.005"],
    },
    "fig16": {
        "baseline": ["experiment=fig16"],
        "temperature4": ["experiment=fig16", "loss.temperature=4"],
        "temperature16": ["experiment=fig16", "loss.temperature=16"],
        "label_smoothing": ["experiment=fig16", "loss.label_smoothing=0.2"],
    },
    "fig12": {
        "grokked_perp_adamw": ["experiment=fig1a", "seeds=[0]"],
        "memorizing_adamw": ["experiment=fig6b", "seeds=[0]"],
    },
    "table1": {
        "softmax_adamw": ["experiment=table1"],
        "stablemax_adamw": ["experiment=table1", "loss=stablemax", "precision=float64"],
        "softmax_perp_adamw": ["experiment=table1", "optimizer=perp_adamw", "optimizer.lr=0.001"],
    },
}


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


def replicated_runs() -> dict[str, list[str]]:
    """The runs that get replicates, by figure (figures with none left out)."""
    runs = {fig: [name for name, ov in named.items() if replicated(ov)] for fig, named in RUNS.items()}
    return {fig: names for fig, names in runs.items() if names}


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


def print_plan(jobs: list[tuple[str, str, list[str], Path]], results: Path = ROOT / "results") -> None:
    """Runs still to make, in CPU minutes on one idle core: those ``results/figure_times_cpu.csv``
    measured for one run (epochs x ms/epoch on this repository's CPU path; a run of several seeds
    counts them all), or else the median wall time of the run's committed one-thread CPU replicates,
    which were made beside another job and are brought to the idle scale by :func:`beside_factor`.
    The total is also given on the beside-another-job scale, the one two jobs at a time pay."""
    import csv

    times = {(r["figure"], r["run"]): r for r in csv.DictReader((results / "figure_times_cpu.csv").open())}
    factor, pairs = beside_factor(results, times)
    total, unknown = 0.0, []
    print(f"{'run':42} {'replicate':>9} {'epochs':>7} {'ms/epoch':>9} {'minutes':>8}  timed by")
    for fig, name, _, out in jobs:
        if status(out / fig / name) in ("completed", "diverged"):
            continue
        row, k = times.get((fig, name)), "0" if out.name == "results" else out.name
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
        print(f"{fig + '/' + name:42} {k:>9} {epochs:>7} {minutes * 60000 / epochs:9.1f} {minutes:8.1f}  {source}")
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
    is then handed to train.py, which resumes it or says in one line what is wrong)."""
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text())["status"] if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_one(
    figure: str, name: str, overrides: list[str], out: Path, device: str, threads: int
) -> tuple[str, int, float]:
    run_dir = out / figure / name
    label = f"{figure}/{name}"
    if status(run_dir) == "completed":
        return label, 0, 0.0
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


def postprocess(figure: str, out: Path) -> None:
    if figure == "fig7":
        from reproduction.trajectory import export_trajectories

        export_trajectories({name: out / "fig7" / name for name in RUNS["fig7"]}, out / "fig7")
    if figure == "fig12":
        from reproduction.fourier import export_spectra

        export_spectra({name: out / "fig12" / name for name in RUNS["fig12"]}, out / "fig12")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", help=f"figures to run ({', '.join(RUNS)}, or all)")
    parser.add_argument("--only", nargs="*", help="run only these runs: NAME or FIGURE/NAME (see --list)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (default: cores / jobs)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    parser.add_argument(
        "--cuda-graph", action="store_true", help="on CUDA: replay non-logging epochs as a CUDA graph (4-5x faster)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results", help="results folder")
    parser.add_argument(
        "--replicates", type=int, default=1, help="independent replicates per run, the run itself included (default 1)"
    )
    parser.add_argument("--list", action="store_true", help="print the runs and exit")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the CPU time of the runs still to make, idle and beside another job",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        fail(f"--jobs {args.jobs} is not valid; expected a positive number of runs at a time")
    if args.threads < 0:
        fail(f"--threads {args.threads} is not valid; expected a positive number (0 = cores / jobs)")

    figures = list(RUNS) if args.figures in ([], ["all"]) else args.figures
    unknown = [f for f in figures if f not in RUNS]
    if unknown:
        fail(f"unknown figure {unknown[0]}; choose from: {', '.join([*RUNS, 'all'])}")
    runs = [(fig, name, overrides) for fig in figures for name, overrides in RUNS[fig].items()]
    if args.only:
        known = {name for _, name, _ in runs} | {f"{fig}/{name}" for fig, name, _ in runs}
        if unknown := [o for o in args.only if o not in known]:
            fail(f"--only {unknown[0]} is not a run of {' '.join(figures)}; see --list for the choices")
    if args.replicates < 1:
        fail(f"--replicates {args.replicates} is not valid; expected a positive number (1 = the run itself)")
    todo = [(fig, name, ov) for fig, name, ov in runs if not args.only or {name, f"{fig}/{name}"} & set(args.only)]
    extra = ["cuda_graph=true"] if args.cuda_graph else []
    jobs = [
        (fig, name, [*replicate_overrides(ov, k), *extra], replicate_root(args.out, k))
        for k in range(args.replicates)
        for fig, name, ov in todo
        if k == 0 or replicated(ov)
    ]
    if args.list:
        for fig, name, overrides, out in jobs:
            where = "" if out == args.out else f" [{out.relative_to(args.out)}]"
            print(f"{fig}/{name}{where}: python train.py {' '.join(overrides)}")
        return
    if args.plan:
        print_plan(jobs)
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
    for fig in {fig for fig, _, _ in todo} & {"fig7", "fig12"}:  # exports from that figure's runs
        if all(status(args.out / fig / name) == "completed" for name in RUNS[fig]):
            postprocess(fig, args.out)
    if failed:
        sys.exit(f"{len(failed)} runs failed: {', '.join(failed)} (see their train.log)")


if __name__ == "__main__":
    main()
