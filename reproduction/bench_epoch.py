"""One timed training epoch of a config, and the clocks the speed measurements share.

:class:`Epoch` is the body of the loop in ``grokking.train`` (forward, loss, backward, optimizer
step, no logging) for one composed config; ``time_epochs`` times it in blocks alternating with
matmul probes, so that epochs and the machine's matmul throughput see the same conditions. The
benchmark (``reproduction.bench``), the late-state cache (``reproduction.late_states``) and the
per-figure estimate (``reproduction.figure_times``) all time this one epoch.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from grokking.cli import compose
from grokking.config import TrainConfig
from grokking.data import build_dataset
from grokking.graphs import StepGraphs, make_capturable
from grokking.losses import DTYPES
from grokking.models import build_model
from grokking.optim import build_optimizer
from grokking.step import TrainStep, native_module
from grokking.train import to_config


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
