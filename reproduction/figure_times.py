"""Estimated CPU time to reproduce each paper figure from the runs committed in ``results/``.

    python scripts/figure_times.py            # writes results/figure_times_cpu.csv, prints a table

``scripts/figure_times.py`` (``make figure-times``) is its entry point.

For every run directory of a figure (``results/<figure>/<run>/``, verification copies excluded) it
builds the run's model, data and optimizer from its saved config on the CPU, times
``--epochs`` training epochs after a few warm-up ones (what ``train()`` computes per epoch, with
every seed of the run batched as the run did, without logging), and multiplies the median by the
run's epochs. Runs are timed one at a time, on all cores or on ``--threads``: the estimate is for
running a figure's runs one after another that way (with ``--threads 1``, CPU-minutes per run of
``reproduce.py --jobs 2 --threads 1``). Early epochs are timed; late ones can cost more
(docs/speed.md, "Late epochs"): for the runs that the benchmark's late-state settings
(``reproduction.bench_settings``) reproduce (Figs. 1b, 2, 4 and 8), the state after Softmax
Collapse cached by ``reproduction.late_states`` is timed too, where it is cached, and the run's epochs from that state on are counted at the late rate.
The machine's float32 matmul throughput, measured before and after, goes into every row: estimates
from sittings at different throughputs differ by about its ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf

from grokking.runtime import keep_freed_memory
from grokking.train import to_config
from reproduction.bench_epoch import Epoch, matmul_gflops, time_epochs
from reproduction.bench_settings import LATE_SETTINGS
from reproduction.late_states import cached_state, load_state

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [
    "figure", "run", "epochs", "seeds", "kernel", "ms_per_epoch", "late_from_epoch", "late_ms_per_epoch", "minutes",
    "matmul_gflops", "threads", "torch",
]  # fmt: skip
# committed runs whose configuration a late-state setting of the benchmark reproduces
LATE_RUNS = {run: s for s in LATE_SETTINGS for run in s.runs}


def run_dirs(results: Path) -> list[Path]:
    """Every run directory under a figure folder (one holding a summary.json), in figure order."""
    figures = [d for d in results.iterdir() if d.is_dir() and (d.name.startswith("fig") or d.name == "table1")]
    figures.sort(key=lambda d: (d.name == "table1", int(d.name[3:]) if d.name[3:].isdigit() else 0))
    return [r for fig in figures for r in sorted(fig.iterdir()) if (r / "summary.json").is_file()]


def saved_config(run: Path):
    for path in (run / "config.yaml", run / ".hydra" / "config.yaml"):
        if path.is_file():
            cfg = OmegaConf.load(path)
            cfg.device, cfg.logger = "cpu", {"name": "none"}
            if "cuda_graph" in cfg:
                cfg.cuda_graph = False
            return to_config(cfg)[0]
    raise FileNotFoundError(f"{run}: no config.yaml")


def time_run(run: Path, warmup: int, epochs: int) -> dict:
    cfg = saved_config(run)
    seeds = list(cfg.seeds) if cfg.seeds is not None else [cfg.seed]
    epoch = Epoch(cfg, seeds)
    ms = 1000 * statistics.median(time_epochs(epoch, warmup, epochs)[0])
    run_epochs = json.loads((run / "summary.json").read_text())["epochs"]
    late = LATE_RUNS.get(f"{run.parent.name}/{run.name}")
    state = cached_state(late.overrides, late.late_epochs, late.seeds) if late else None
    late_from, late_ms, minutes = None, None, ms * run_epochs / 60_000
    if state is not None and late.late_epochs < run_epochs:
        late_epoch = load_state(Epoch(cfg, seeds), state)
        late_ms = 1000 * statistics.median(time_epochs(late_epoch, warmup, epochs)[0])
        late_from = late.late_epochs
        minutes = (ms * late_from + late_ms * (run_epochs - late_from)) / 60_000
    return {
        "figure": run.parent.name,
        "run": run.name,
        "epochs": run_epochs,
        "seeds": len(seeds),
        "kernel": epoch.kernel,
        "ms_per_epoch": ms,
        "late_from_epoch": late_from,
        "late_ms_per_epoch": late_ms,
        "minutes": minutes,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="folder of figure runs")
    parser.add_argument("--epochs", type=int, default=30, help="timed epochs per run (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed epochs first (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="CSV (default <results>/figure_times_cpu.csv)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads {args.threads}: choose 1 or more")
        torch.set_num_threads(args.threads)
    runs = run_dirs(args.results)
    if not runs:
        parser.error(f"--results {args.results}: no run directories (figure folders holding summary.json)")
    keep_freed_memory()  # as train() does on CPU
    before = matmul_gflops(2048, 7)
    rows = []
    for run in runs:
        rows.append(time_run(run, args.warmup, args.epochs))
        r = rows[-1]
        late = f", {r['late_ms_per_epoch']:.2f} from epoch {r['late_from_epoch']}" if r["late_from_epoch"] else ""
        print(
            f"{r['figure']}/{r['run']}: {r['ms_per_epoch']:.2f} ms/epoch{late} × {r['epochs']} = {r['minutes']:.1f} min"
        )
    gflops = max(before, matmul_gflops(2048, 7))
    for r in rows:
        r["matmul_gflops"] = gflops
    out = args.out or args.results / "figure_times_cpu.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["figure"]] = totals.get(r["figure"], 0.0) + r["minutes"]
    print("| figure | runs | CPU estimate (min) |\n|---|---:|---:|")
    for fig, minutes in totals.items():
        print(f"| {fig} | {sum(r['figure'] == fig for r in rows)} | {minutes:.0f} |")
    print(f"all: {sum(totals.values()) / 60:.1f} h at {gflops:.0f} GFLOP/s (float32 matmul); wrote {out}")
    return rows


if __name__ == "__main__":
    main()
