"""Speed benchmark: ms per epoch of the paper's settings against the machine's float32 matmul floor.

In one process and one sitting it measures, for each setting below, the median time of one training
epoch (forward, loss, backward, optimizer step, no logging: the body of the loop in
``grokking.train``), its useful matmul FLOPs (counted by ``torch.utils.flop_counter``; the one-hot
first layer is a gather and counts nothing), the float32 matmul throughput of this machine measured
between its epochs (square ``torch.mm``), the ratio to the matmul floor (FLOPs / throughput) and
memory; the sitting's best throughput, before and after all settings, gives a second ratio. Two more rows time
whole ``train()`` runs, with every diagnostic logged every 100 epochs and with no logging.

    python scripts/bench.py                 # full benchmark (a few minutes), writes results/bench.csv
    python scripts/bench.py --smoke --out /tmp/bench.csv   # seconds; what the test suite runs
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # late_states.py, beside this script

from grokking import backward  # noqa: E402
from grokking.cli import compose  # noqa: E402
from grokking.config import TrainConfig  # noqa: E402
from grokking.data import build_dataset  # noqa: E402
from grokking.graphs import StepGraphs, make_capturable  # noqa: E402
from grokking.losses import DTYPES  # noqa: E402
from grokking.models import build_model  # noqa: E402
from grokking.optim import build_optimizer  # noqa: E402
from grokking.runtime import keep_freed_memory  # noqa: E402
from grokking.step import TrainStep, native_module  # noqa: E402
from grokking.train import to_config, train  # noqa: E402

ADD = ["dataset=add_mod", "model=mlp"]
ADAMW_STABLEMAX = ["optimizer=adamw", "loss=stablemax", "precision=float64"]
ADAMW_SOFTMAX = ["optimizer=adamw", "loss=softmax", "precision=float32"]


@dataclass
class Setting:
    name: str
    overrides: list[str]
    target: float | None  # the largest allowed ratio to the matmul floor
    seeds: list[int] = field(default_factory=lambda: [0])
    late_epochs: int = 0  # > 0: also timed from the state after this many epochs (scripts/late_states.py)
    runs: tuple[str, ...] = ()  # committed runs (figure/run) whose configuration a late-state setting is


SETTINGS = [
    Setting("mlp add 40% StableMax f64 AdamW", [*ADD, "dataset.train_fraction=0.4", *ADAMW_STABLEMAX], 1.6),
    Setting("mlp add 40% softmax f32 AdamW", [*ADD, "dataset.train_fraction=0.4", *ADAMW_SOFTMAX], 1.6),
    Setting("mlp add 60% softmax f32 AdamW", [*ADD, "dataset.train_fraction=0.6", *ADAMW_SOFTMAX], 1.6),
    Setting("mlp add 70% softmax f32 AdamW", [*ADD, "dataset.train_fraction=0.7", *ADAMW_SOFTMAX], 1.6),
    Setting(
        "mlp sparse parity StableMax f64 AdamW", ["dataset=sparse_parity", "model.bias=true", *ADAMW_STABLEMAX], 1.6
    ),
    Setting("mlp add 40% softmax f32 ⊥AdamW (default run)", [*ADD, "optimizer=perp_adamw"], None),
    Setting("transformer sub 40% softmax f32 AdamW", ["dataset=sub_mod", "model=transformer", *ADAMW_SOFTMAX], 2.0),
    Setting(
        "mlp add 40% StableMax f64 AdamW, 4 seeds batched",
        [*ADD, "dataset.train_fraction=0.4", *ADAMW_STABLEMAX],
        None,
        [0, 1, 2, 3],
    ),
    # the same epochs through autograd, for comparison with the C++ kernels that the settings above use on CPU
    Setting(
        "mlp add 40% StableMax f64 AdamW, autograd",
        [*ADD, "dataset.train_fraction=0.4", *ADAMW_STABLEMAX, "cpu_kernel=torch"],
        None,
    ),
    Setting(
        "mlp add 40% softmax f32 AdamW, autograd",
        [*ADD, "dataset.train_fraction=0.4", *ADAMW_SOFTMAX, "cpu_kernel=torch"],
        None,
    ),
    Setting(
        "transformer sub 40% softmax f32 AdamW, autograd",
        ["dataset=sub_mod", "model=transformer", *ADAMW_SOFTMAX, "cpu_kernel=torch"],
        None,
    ),
    Setting(
        "mlp sparse parity StableMax f64 AdamW, autograd",
        ["dataset=sparse_parity", "model.bias=true", *ADAMW_STABLEMAX, "cpu_kernel=torch"],
        None,
    ),
]
# Late-state settings: each timed from its initialization and from the state after `late_epochs`
# epochs of training (after Softmax Collapse), in alternating blocks; the state is produced on the
# C++ path where it applies and cached (scripts/late_states.py).
FIG2_70 = ["experiment=fig2", "dataset.train_fraction=0.7"]
LATE_SETTINGS = [
    Setting(
        "fig8 baseline: add 60% softmax f64 loss AdamW",
        ["experiment=fig8"],
        None,
        late_epochs=5000,
        runs=("fig8/baseline",),
    ),
    Setting(
        "fig8 intervention: the baseline, correct-class gradients zeroed from epoch 6000",
        ["experiment=fig8", "sc_intervention_epoch=6000"],
        None,
        late_epochs=7000,
        runs=("fig8/intervention",),
    ),
    Setting(
        "fig2 add 70% softmax f32",
        [*FIG2_70, "precision=float32"],
        None,
        late_epochs=3000,
        runs=("fig2/frac0.7_float32",),
    ),
    Setting(
        "fig2 add 70% softmax f16",
        [*FIG2_70, "precision=float16"],
        None,
        late_epochs=2000,
        runs=("fig2/frac0.7_float16",),
    ),
    Setting("fig1b add 40% StableMax f64", ["experiment=fig1b"], None, late_epochs=2000, runs=("fig1/b_stablemax",)),
    Setting(
        "fig4 sparse parity StableMax f64",
        ["experiment=fig4", "dataset=sparse_parity", "model.bias=true", "optimizer.eps=1e-18"],
        None,
        late_epochs=2000,
        runs=("fig4/sparse_parity",),
    ),
    Setting(
        "study: 2-layer MLP add 40% softmax f32, AdamW lr 1e-2 weight decay 10 (subnormal weights of dead units)",
        ["experiment=study_baselines_mlp2", "optimizer.lr=0.01", "optimizer.weight_decay=10"],
        None,
        late_epochs=1000,
        runs=("study_baselines/mlp2/adamw_lr0.01_wd10.0",),
    ),
]
SEED_SWEEP = [SETTINGS[0], SETTINGS[1], SETTINGS[6]]  # Fig. 1b's MLP, the softmax MLP, the transformer
SMOKE = ["dataset.modulus=23", "model.width=32", "model.d_model=16", "model.n_heads=2", "model.d_mlp=32"]


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


class MatmulProbe:
    """One n×n by n×n float32 ``torch.mm``; timed between blocks of epochs (:func:`time_epochs`), it
    gives the matmul throughput under the machine conditions of those epochs."""

    def __init__(self, n: int, device: str = "cpu"):
        self.n, self.device = n, torch.device(device)
        self.a, self.b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        self.c = torch.empty(n, n, device=device)

    def __call__(self) -> None:
        torch.mm(self.a, self.b, out=self.c)

    def gflops(self, times: list[float]) -> float:
        return 2 * self.n**3 / statistics.median(times) / 1e9


def matmul_gflops(n: int, repeats: int, device: str = "cpu") -> float:
    """Median float32 throughput of an n×n by n×n ``torch.mm`` (GFLOP/s)."""
    probe = MatmulProbe(n, device)
    return probe.gflops(time_epochs(probe, 1, repeats)[0])


def not_sparse_mm(a, b, *args, out_val=None, **kwargs) -> int:
    """FLOPs of ``mm``, except the sparse token-matrix product (the gather's backward) counts 0."""
    if a.layout != torch.strided or b.layout != torch.strided:
        return 0
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


not_sparse_mm._get_raw = True


class Epoch:
    """The body of the training loop in ``grokking.train`` for one configuration, without logging.
    FLOPs and matmul layouts are those of the autograd step (the C++ kernel's BLAS calls are not
    visible to torch's dispatcher); both compute the same products."""

    def __init__(self, cfg: TrainConfig, seeds: list[int]):
        model_dtype = DTYPES[cfg.precision.model_dtype]
        self.device = torch.device(cfg.device)
        self.data = build_dataset(cfg.dataset).to(self.device, model_dtype)
        self.model = build_model(cfg.model, self.data, seeds).to(self.device, model_dtype)
        native = native_module(cfg.cpu_kernel) if self.device.type == "cpu" else None
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters(), native)
        self.step = TrainStep(cfg, self.model, self.data, self.optimizer)
        self.autograd_step = TrainStep(replace(cfg, cpu_kernel="torch"), self.model, self.data, self.optimizer)
        self.kernel = "native" if self.step.native is not None else "torch"
        self.n_train = len(self.data.train_y)
        self.epoch = 0  # epochs trained so far (the SC intervention of Fig. 8 starts at an epoch)
        self.intervene_from = cfg.sc_intervention_epoch

    @classmethod
    def composed(cls, overrides: list[str], seeds: list[int], device: str = "cpu") -> Epoch:
        """The epoch of the config that ``overrides`` compose to."""
        return cls(to_config(compose([f"device={device}", *overrides]))[0], seeds)

    def forward_backward(self) -> torch.Tensor:
        intervene = self.intervene_from is not None and self.epoch >= self.intervene_from
        return self.step(intervene)[2]

    def __call__(self) -> None:
        loss = self.forward_backward()
        if not math.isfinite(loss.item()):  # as grokking.train checks it
            raise RuntimeError("diverged")
        self.optimizer.step()
        self.epoch += 1

    def flops(self) -> int:
        with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.mm: not_sparse_mm}) as counter:
            self.autograd_step()
        return counter.get_total_flops()

    def matmuls(self) -> list[tuple]:
        """The dense matmul calls of one forward and backward pass: (op, input layouts, scalars)."""
        with MatmulRecorder() as recorder:
            self.autograd_step()
        return recorder.calls


class GraphEpoch:
    """An :class:`Epoch` whose steps replay one captured CUDA graph, as ``train()`` does for the
    epochs that do not log with ``cuda_graph=true``."""

    def __init__(self, epoch: Epoch):
        self.device = epoch.device
        make_capturable(epoch.optimizer, epoch.device)
        self.graphs = StepGraphs(lambda _: epoch.forward_backward(), epoch.optimizer)

    def __call__(self) -> None:
        if not math.isfinite(self.graphs(False).item()):
            raise RuntimeError("diverged")


MATMULS = (torch.ops.aten.mm.default, torch.ops.aten.bmm.default, torch.ops.aten.addmm.default)


class MatmulRecorder(TorchDispatchMode):
    """Records every dense matmul (the sparse token-matrix product is a gather's backward, left out)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func in MATMULS and all(t.layout == torch.strided for t in tensors):
            layout = [(a.shape, a.stride(), a.dtype) if isinstance(a, torch.Tensor) else a for a in args]
            self.calls.append((func, layout, kwargs))
        return func(*args, **kwargs)


class MatmulReplay:
    """The recorded matmuls of one epoch, run back to back on fresh inputs of the same layouts: what
    an epoch would cost if everything but its matmuls were free."""

    def __init__(self, calls: list[tuple], device: str):
        self.calls = calls
        self.args = [
            [torch.empty_strided(a[0], a[1], dtype=a[2], device=device).normal_() if isinstance(a, tuple) else a for a in layout]
            for _, layout, _ in calls
        ]  # fmt: skip
        self.device = torch.device(device)

    def __call__(self) -> None:
        for (func, _, kwargs), args in zip(self.calls, self.args):
            func(*args, **kwargs)


def time_epochs(
    step, warmup: int, epochs: int, replay: MatmulReplay | None = None, probe: MatmulProbe | None = None
) -> tuple[list[float], list[float], list[float]]:
    """Times of ``epochs`` calls of ``step`` after ``warmup`` untimed ones, and of ``replay`` and
    ``probe``. With either, blocks of 10 epochs alternate with blocks of 10 timed matmul replays
    and one timed probe, so that all see the same machine conditions (the first call of each
    block of 10, after the other's caches, is left out)."""
    sync = torch.cuda.synchronize if step.device.type == "cuda" else lambda: None

    def timed(f, n: int) -> list[float]:
        out = []
        for _ in range(n):
            sync()
            t = time.perf_counter()
            f()
            sync()
            out.append(time.perf_counter() - t)
        return out

    timed(step, warmup)
    if replay is None and probe is None:
        return timed(step, epochs), [], []
    times, replay_times, probe_times = [], [], []
    while len(times) < epochs:
        times += timed(step, min(10, epochs - len(times)) + 1)[1:]
        replay_times += timed(replay, 11)[1:] if replay is not None else []
        probe_times += timed(probe, 1) if probe is not None else []
    return times, replay_times, probe_times


def bench_setting(s: Setting, extra: list[str], warmup: int, epochs: int, mm_n: int, device: str) -> dict:
    """One setting's row. Its floor uses the matmul throughput measured between its epochs: this
    machine's throughput drifts by up to 20 % within a minute, and epochs and floor then see the
    same conditions (``main`` adds the ratio to the sitting's best throughput too)."""
    rss_before = rss_mb()
    step = Epoch.composed([*s.overrides, *extra], s.seeds, device)
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


def bench_late(s: Setting, extra: list[str], late_epochs: int, warmup: int, epochs: int, device: str) -> list[dict]:
    """Rows of a late-state setting: its epochs from the initialization ("early") and from the state
    after ``late_epochs`` epochs of training ("late", scripts/late_states.py), through the path
    ``cpu_kernel=auto`` picks and through autograd, all timed in alternating blocks of 10 epochs
    (the first of each block left out, as ``time_epochs`` does) so that every variant sees the same
    machine conditions. Both states are also timed with the row bands off ("early, one band", "late, one band":
    every row at the backward scale, the arithmetic before the bands, ``grokking.backward``)."""
    from late_states import late_state, load_state

    state = late_state([*s.overrides, *extra], late_epochs, s.seeds)
    kernels = {"auto": [*s.overrides, *extra], "torch": [*s.overrides, *extra, "cpu_kernel=torch"]}
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
    settings: list[Setting], ks: list[int], extra: list[str], device: str, epochs: int, cuda_graph: bool = False
) -> list[dict]:
    """ms/epoch of K replicas batched in one model, for each K: the throughput gain over K single runs
    (with ``cuda_graph``, every epoch a replay of one captured CUDA graph)."""
    rows = []
    for s in settings:
        single_ms = None
        for k in ks:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            step = Epoch.composed([*s.overrides, *extra], list(range(k)), device)
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
    extra, mm_n, mm_reps = (SMOKE, 128, 5) if args.smoke else ([], 2048, 15)
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
        rows = bench_seed_sweep(SEED_SWEEP, args.seed_sweep, extra, args.device, sweep_epochs, args.cuda_graph)
        for r in rows:
            r.update(env)
        name = f"bench_seeds{suffix or '_cpu'}{'_graph' if args.cuda_graph else ''}.csv"
        write_csv(args.out or f"results/{name}", rows, SEED_COLUMNS)
        return rows

    late_epochs = (lambda s: 20) if args.smoke else (lambda s: s.late_epochs)
    late_timed = args.epochs or (6 if args.smoke else 100)
    late_settings = [] if args.no_late else [s for s in LATE_SETTINGS if args.only is None or args.only in s.name]
    if args.late:  # the late-state rows replace those of the CSV, whose other rows stay
        rows = [r for s in late_settings for r in bench_late(s, extra, late_epochs(s), warmup, late_timed, args.device)]
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
    rows = [bench_setting(s, extra, warmup, epochs, mm_n, args.device) for s in settings]
    rows += [r for s in late_settings for r in bench_late(s, extra, late_epochs(s), warmup, late_timed, args.device)]
    if args.only is None:
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
