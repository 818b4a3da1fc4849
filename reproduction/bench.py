"""Speed benchmark: ms per epoch of the paper's settings against the machine's float32 matmul floor.

In one process and one sitting it measures, for each setting of ``reproduction.bench_settings``, the
median time of one training epoch (forward, loss, backward, optimizer step, no logging: the body of
the loop in ``grokking.train``, ``reproduction.bench_epoch.Epoch``), its useful matmul FLOPs
(counted by ``torch.utils.flop_counter``; the one-hot first layer is a gather and counts nothing),
the float32 matmul throughput of this machine measured between its epochs (square ``torch.mm``),
the ratio to the matmul floor (FLOPs / throughput) and memory; the sitting's best throughput,
before and after all settings, gives a second ratio. Two more rows time whole ``train()`` runs, with every diagnostic logged every 100 epochs and with no logging.

    python scripts/bench.py                 # full benchmark (a few minutes), writes results/bench.csv
    python scripts/bench.py --smoke --out /tmp/bench.csv   # seconds; what the test suite runs

``scripts/bench.py`` (``make bench``, ``make bench-late``, ``make bench-gpu``) is its entry point.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from grokking import backward
from grokking.cli import compose
from grokking.runtime import keep_freed_memory
from grokking.step import native_module
from grokking.train import train
from reproduction.bench_epoch import Epoch, GraphEpoch, MatmulProbe, MatmulReplay, matmul_gflops, time_epochs
from reproduction.bench_settings import LATE_SETTINGS, SEED_SWEEP, SETTINGS, Setting, smoke, smoke_overrides
from reproduction.late_states import late_state, load_state


def rss_mb() -> float:
    """Resident memory of this process now (Linux), in MiB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_setting(s: Setting, warmup: int, epochs: int, mm_n: int, device: str) -> dict:
    """One setting's row. Its floor uses the matmul throughput measured between its epochs: this
    machine's throughput drifts by up to 20 % within a minute, and epochs and floor then see the
    same conditions (``main`` adds the ratio to the sitting's best throughput too)."""
    rss_before = rss_mb()
    step = Epoch.composed(s.overrides, s.seeds, device)
    flops = step.flops()
    replay, probe = MatmulReplay(step.matmuls(), device), MatmulProbe(mm_n, device)
    times, matmul_times, probe_times = time_epochs(step, warmup, epochs // 2, replay, probe)
    rss_mid = rss_mb()
    more, more_matmul, more_probe = time_epochs(step, 0, epochs - epochs // 2, replay, probe)
    times, matmul_times, probe_times = times + more, matmul_times + more_matmul, probe_times + more_probe
    ms = 1000 * statistics.median(times)
    matmul_ms = 1000 * statistics.median(matmul_times)
    gflops_here = probe.gflops(probe_times)
    floor_ms = 1000 * flops / (gflops_here * 1e9)
    return {
        "setting": s.name,
        "kernel": step.kernel,
        "seeds": len(s.seeds),
        "n_train": step.n_train,
        "gflop_per_epoch": flops / 1e9,
        "ms_per_epoch": ms,
        "ms_per_epoch_p90": 1000 * statistics.quantiles(times, n=10)[-1],
        "achieved_gflops": flops / ms / 1e6,
        "setting_gflops": gflops_here,
        "floor_ms": floor_ms,
        "ratio_to_floor": ms / floor_ms,
        "target_ratio": s.target,
        "matmuls_alone_ms": matmul_ms,
        "matmuls_alone_ratio": matmul_ms / floor_ms,
        "rss_mb": rss_mb(),
        "rss_growth_mb": rss_mb() - rss_mid,
        "rss_setting_mb": rss_mb() - rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "epochs_timed": len(times),
        "loadavg_1m": os.getloadavg()[0],
    }


def bench_late(s: Setting, late_epochs: int, warmup: int, epochs: int, device: str) -> list[dict]:
    """Rows of a late-state setting: its epochs from the initialization ("early") and from the state
    after ``late_epochs`` epochs of training ("late", ``reproduction.late_states``), through the path
    ``cpu_kernel=auto`` picks and through autograd, all timed in alternating blocks of 10 epochs
    (the first of each block left out, as ``time_epochs`` does) so that every variant sees the same
    machine conditions. Both states are also timed with the row bands off ("early, one band", "late, one band":
    every row at the backward scale, the arithmetic before the bands, ``grokking.backward``)."""
    state = late_state(s.overrides, late_epochs, s.seeds)
    kernels = {"auto": s.overrides, "torch": [*s.overrides, "cpu_kernel=torch"]}
    variants: dict[tuple[str, str], object] = {}
    for kernel, overrides in kernels.items():
        early = Epoch.composed(overrides, s.seeds, device)
        if kernel == "torch" and variants[("auto", "early")].kernel == "torch":
            break  # auto took autograd already
        variants[(kernel, "early")] = early
        variants[(kernel, "early, one band")] = Epoch.composed(overrides, s.seeds, device)
        variants[(kernel, "late")] = load_state(Epoch.composed(overrides, s.seeds, device), state)
        variants[(kernel, "late, one band")] = load_state(Epoch.composed(overrides, s.seeds, device), state)
    module = native_module("auto")

    def bands_off(epoch):
        def step():
            if module is not None:
                module.set_row_bands(False)
            backward.BANDS["on"] = False
            try:
                epoch()
            finally:
                if module is not None:
                    module.set_row_bands(True)
                backward.BANDS["on"] = True

        step.device = epoch.device
        return step

    steps = {k: bands_off(e) if k[1].endswith("one band") else e for k, e in variants.items()}
    for step in steps.values():
        time_epochs(step, warmup, 0)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
    while len(times[next(iter(times))]) < epochs:
        for k, step in steps.items():
            times[k] += time_epochs(step, 0, 11)[0][1:]
    rows = []
    for (kernel, phase), epoch in variants.items():
        ms = 1000 * statistics.median(times[(kernel, phase)])
        early_ms = 1000 * statistics.median(times[(kernel, "early")])
        rows.append(
            {
                "setting": s.name + ("" if kernel == "auto" else ", autograd"),
                "kernel": epoch.kernel,
                "seeds": len(s.seeds),
                "n_train": epoch.n_train,
                "state": ("epoch 0" + phase[5:]) if phase.startswith("early") else f"epoch {late_epochs}" + phase[4:],
                "ms_per_epoch": ms,
                "ms_per_epoch_p90": 1000 * statistics.quantiles(times[(kernel, phase)], n=10)[-1],
                "late_over_early": ms / early_ms,
                "epochs_timed": len(times[(kernel, phase)]),
                "loadavg_1m": os.getloadavg()[0],
            }
        )
        r = rows[-1]
        print(f"{r['setting']:55s} {r['kernel']:6s} {r['state']:22s} {ms:8.2f} ms  ×{r['late_over_early']:.2f}")
    return rows


def bench_seed_sweep(
    settings: list[Setting], ks: list[int], device: str, epochs: int, cuda_graph: bool = False
) -> list[dict]:
    """ms/epoch of K replicas batched in one model, for each K: the throughput gain over K single runs
    (with ``cuda_graph``, every epoch a replay of one captured CUDA graph)."""
    rows = []
    for s in settings:
        single_ms = None
        for k in ks:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            step = Epoch.composed(s.overrides, list(range(k)), device)
            step = GraphEpoch(step) if cuda_graph else step
            ms = 1000 * statistics.median(time_epochs(step, max(3, epochs // 10), epochs)[0])
            single_ms = ms if k == 1 else single_ms
            rows.append(
                {
                    "setting": s.name.split(",")[0],
                    "device": device,
                    "cuda_graph": cuda_graph,
                    "seeds": k,
                    "ms_per_epoch": ms,
                    "replica_epochs_per_s": 1000 * k / ms,
                    "gain_over_single_runs": k * single_ms / ms if single_ms else None,
                    "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
                    "epochs_timed": epochs,
                }
            )
            r = rows[-1]
            print(f"{r['setting']:40s} K={k:4d} {ms:9.3f} ms/epoch {r['replica_epochs_per_s']:9.0f} replica-epochs/s")
            del step
    return rows


def bench_train_runs(extra: list[str], epochs: int, repeats: int, cuda_graph: bool = False) -> list[dict]:
    """Whole ``train()`` runs of the default setting, with every diagnostic every 100 epochs and without
    (and, with ``cuda_graph``, with the epochs between logged ones replayed as a CUDA graph)."""
    variants = {
        "train() default run, all diagnostics every 100 epochs": ["log_every=100"],
        "train() default run, no logging": [f"log_every={10**9}"],
    }
    if cuda_graph:
        variants["train() default run, CUDA graph, all diagnostics every 100 epochs"] = [
            "log_every=100",
            "cuda_graph=true",
        ]
    times: dict[str, list[float]] = {name: [] for name in variants}
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # interleaved, so that a change of machine load hits both alike
            for k, (name, overrides) in enumerate(variants.items()):
                cfg = compose([*extra, f"epochs={epochs}", *overrides, "checkpoint_every=0"])
                t = time.perf_counter()
                train(cfg, Path(tmp) / f"{k}-{i}")
                times[name].append(time.perf_counter() - t)
                rows[name] = sum(1 for _ in open(Path(tmp) / f"{k}-{i}" / "metrics.csv")) - 1
    return [
        {
            "setting": name,
            "seeds": 1,
            "ms_per_epoch": 1000 * statistics.median(times[name]) / epochs,
            "metric_rows": rows[name],
            "epochs_timed": epochs * repeats,
            "peak_rss_mb": peak_rss_mb(),
            "loadavg_1m": os.getloadavg()[0],
        }
        for name in variants
    ]


COLUMNS = [
    "setting", "kernel", "seeds", "n_train", "gflop_per_epoch", "ms_per_epoch", "ms_per_epoch_p90", "achieved_gflops",
    "setting_gflops", "floor_ms", "ratio_to_floor", "ratio_to_peak_floor", "target_ratio", "matmuls_alone_ms",
    "matmuls_alone_ratio", "rss_mb", "rss_growth_mb", "rss_setting_mb", "peak_rss_mb",
    "metric_rows", "state", "late_over_early", "epochs_timed", "loadavg_1m", "matmul_gflops", "device_name", "threads", "torch",
]  # fmt: skip


API_SHAPES = ((256, 10), (256, 113), (64, 32000))  # (N, C): a small batch, the paper's modulus, a vocabulary


def bench_api(device: str, repeats: int, smoke: bool = False) -> list[dict]:
    """The API rows: ``grokking.stablemax_cross_entropy`` against ``F.cross_entropy`` on float32
    logits ``(N, C)``, forward and backward of the mean loss. Blocks of 20 calls of the two alternate
    so that both see the same machine conditions; the ratio is of their medians in this one run. On
    the CPU each call is timed by the process's CPU time (``time.process_time``), so that other jobs
    on a shared machine do not enter the ratio (``--api`` runs one torch thread unless ``--threads``
    says otherwise); on CUDA by the wall clock between synchronizations."""
    from grokking import stablemax_cross_entropy

    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    clock = time.perf_counter if device == "cuda" else time.process_time
    rows = []
    for n, c in API_SHAPES[:1] if smoke else API_SHAPES:
        calls = repeats if n * c < 100_000 else max(repeats // 25, 20)  # large C: ms per call
        g = torch.Generator().manual_seed(0)
        z = (3 * torch.randn(n, c, generator=g)).to(device).requires_grad_(True)
        y = torch.randint(0, c, (n,), generator=g).to(device)
        losses = {
            "F.cross_entropy": torch.nn.functional.cross_entropy,
            "stablemax_cross_entropy": stablemax_cross_entropy,
        }
        times: dict[str, list[float]] = {name: [] for name in losses}

        def block(fn, k: int, z=z, y=y) -> list[float]:
            out = []
            for _ in range(k):
                sync()
                t = clock()
                fn(z, y).backward()
                sync()
                out.append(clock() - t)
            return out

        for fn in losses.values():
            block(fn, 20)  # warm-up
        while len(times["F.cross_entropy"]) < calls:
            for name, fn in losses.items():
                times[name] += block(fn, 21)[1:]
        ref, ours = (1e6 * statistics.median(times[name]) for name in losses)
        rows.append(
            {"setting": f"api ({n}, {c}) float32", "us_cross_entropy": ref, "us_stablemax": ours, "ratio": ours / ref}
        )
    return rows


def fmt(v) -> str:
    if v is None or v == "":
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_csv(path: str, rows: list[dict], columns: list[str]) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in columns})
    print(f"wrote {out}")


TRAIN_ROWS = ("train() default run, all diagnostics", "train() default run, no logging")
SEED_COLUMNS = [
    "setting", "device", "cuda_graph", "seeds", "ms_per_epoch", "replica_epochs_per_s", "gain_over_single_runs", "peak_gpu_mb",
    "epochs_timed", "device_name", "threads", "torch",
]  # fmt: skip


def seed_counts(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated counts, e.g. 1,4,16") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: counts must be ≥ 1")
    return ks


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few epochs (seconds)")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per setting")
    parser.add_argument("--out", default=None, help="CSV to write (default results/bench[_seeds]_<device>.csv)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    parser.add_argument(
        "--seed-sweep", type=seed_counts, default=None, metavar="K,K,...",
        help="instead of the table: time K seeds batched in one model for each K (e.g. 1,4,16,64)",
    )  # fmt: skip
    parser.add_argument("--cuda-graph", action="store_true", help="with --seed-sweep on CUDA: replay CUDA graphs")
    parser.add_argument(
        "--late",
        action="store_true",
        help="only the late-state settings: their rows replace the CSV's late-state rows (with --only: no CSV)",
    )
    parser.add_argument(
        "--no-late", action="store_true", help="leave the late-state settings out (their rows of the CSV stay)"
    )
    parser.add_argument(
        "--only", default=None, metavar="TEXT", help="time only the settings whose name contains TEXT (no CSV written)"
    )
    parser.add_argument(
        "--api",
        action="store_true",
        help="only the API rows: stablemax_cross_entropy against F.cross_entropy, forward and backward (no CSV)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available (choices: cpu, cuda)")
    if args.cuda_graph and (args.device != "cuda" or not args.seed_sweep):
        parser.error("--cuda-graph needs --device cuda and --seed-sweep")
    if args.threads or args.api:
        torch.set_num_threads(args.threads or 1)  # --api: one thread unless --threads says otherwise
    keep_freed_memory()  # as train() does on CPU
    mm_n, mm_reps = (128, 5) if args.smoke else (2048, 15)
    sized = smoke if args.smoke else (lambda s: s)  # --smoke: tiny sizes of each setting's model and data
    epochs = args.epochs or (6 if args.smoke else 300)
    warmup = 2 if args.smoke else 20
    train_epochs, train_repeats = (4, 1) if args.smoke else (500, 3)
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    env = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
    }
    print(f"load average {os.getloadavg()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {env}")

    if args.api:
        rows = bench_api(args.device, args.epochs or (40 if args.smoke else 2000), args.smoke)
        print(f"{'setting':26s}  {'F.cross_entropy us':>18s}  {'stablemax us':>12s}  {'ratio':>6s}")
        for r in rows:
            print(f"{r['setting']:26s}  {r['us_cross_entropy']:18.1f}  {r['us_stablemax']:12.1f}  {r['ratio']:6.2f}")
        return rows

    if args.seed_sweep:
        sweep_epochs = args.epochs or (6 if args.smoke else 100)
        rows = bench_seed_sweep(
            [sized(s) for s in SEED_SWEEP], args.seed_sweep, args.device, sweep_epochs, args.cuda_graph
        )
        for r in rows:
            r.update(env)
        name = f"bench_seeds{suffix or '_cpu'}{'_graph' if args.cuda_graph else ''}.csv"
        write_csv(args.out or f"results/{name}", rows, SEED_COLUMNS)
        return rows

    late_epochs = (lambda s: 20) if args.smoke else (lambda s: s.late_epochs)
    late_timed = args.epochs or (6 if args.smoke else 100)
    late_settings = [] if args.no_late else [s for s in LATE_SETTINGS if args.only is None or args.only in s.name]
    if args.late:  # the late-state rows replace those of the CSV, whose other rows stay
        rows = [r for s in late_settings for r in bench_late(sized(s), late_epochs(s), warmup, late_timed, args.device)]
        for r in rows:
            r.update(env)
        out = Path(args.out or f"results/bench{suffix}.csv")
        if args.only is None:
            kept = [r for r in csv.DictReader(out.open()) if not r.get("state")] if out.is_file() else []
            write_csv(str(out), kept + rows, COLUMNS)
        return rows
    settings = [s for s in SETTINGS if args.only is None or args.only in s.name]
    if not settings and not late_settings:
        parser.error(f"--only {args.only!r} matches no setting; choose from: {', '.join(s.name for s in SETTINGS)}")
    gflops_before = matmul_gflops(mm_n, mm_reps, args.device)
    rows = [bench_setting(sized(s), warmup, epochs, mm_n, args.device) for s in settings]
    rows += [r for s in late_settings for r in bench_late(sized(s), late_epochs(s), warmup, late_timed, args.device)]
    if args.only is None:
        extra = smoke_overrides([]) if args.smoke else []
        rows += bench_train_runs([f"device={args.device}", *extra], train_epochs, train_repeats, args.device == "cuda")
    gflops_after = matmul_gflops(mm_n, mm_reps, args.device)
    gflops = max(gflops_before, gflops_after)  # the less disturbed of the two measurements
    for r in rows:
        if "gflop_per_epoch" in r:  # against the sitting's best throughput instead of the setting's own
            r["ratio_to_peak_floor"] = r["ms_per_epoch"] * gflops / (1000 * r["gflop_per_epoch"])
        r.update(matmul_gflops=gflops, **env)
    print(f"float32 matmul throughput ({mm_n}² mm): {gflops_before:.0f} GFLOP/s before, {gflops_after:.0f} after")

    shown = [
        "setting",
        "kernel",
        "ms_per_epoch",
        "gflop_per_epoch",
        "achieved_gflops",
        "setting_gflops",
        "ratio_to_floor",
        "ratio_to_peak_floor",
        "target_ratio",
    ]
    shown += ["matmuls_alone_ratio"]
    shown += ["peak_rss_mb", "rss_growth_mb", "loadavg_1m"]
    width = max(len(r["setting"]) for r in rows)
    print(f"{'setting':{width}s}  " + "  ".join(f"{c:>15s}" for c in shown[1:]))
    for r in rows:
        print(f"{r['setting']:{width}s}  " + "  ".join(f"{fmt(r.get(c)):>15s}" for c in shown[1:]))
    if args.only is not None:
        return rows
    single = next(r for r in rows if r["setting"] == SETTINGS[0].name)
    batched = next(r for r in rows if r["seeds"] == 4)
    ratio = batched["ms_per_epoch"] / (4 * single["ms_per_epoch"])
    print(f"4 seeds batched cost {ratio:.2f}× four single-seed runs")
    logged, plain = (next(r["ms_per_epoch"] for r in rows if r["setting"].startswith(p)) for p in TRAIN_ROWS)
    print(f"logging every 100 epochs adds {100 * (logged / plain - 1):.1f} % to a train() run")
    out = Path(args.out or f"results/bench{suffix}.csv")
    kept = []
    if args.no_late and out.is_file():  # the CSV's late-state rows stay (--late replaces only those)
        kept = [r for r in csv.DictReader(out.open()) if r.get("state")]
    write_csv(str(out), rows + kept, COLUMNS)
    return rows


if __name__ == "__main__":
    main()
