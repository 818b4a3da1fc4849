"""The body of the training loop: forward pass, loss and backward pass of one full-batch epoch.

:class:`TrainStep` is shared by ``grokking.train`` and the speed benchmark (``scripts/bench.py``),
so that the benchmark times exactly what a run computes. The optimizer steps after it. On CPU it
runs the C++ kernels of :mod:`grokking.native` where ``cpu_kernel`` allows, else autograd;
:func:`native_module` also gives :func:`grokking.optim.build_optimizer` its AdamW update.
"""

from __future__ import annotations

import functools
import sys
from functools import partial
from types import ModuleType

import torch

from grokking.backward import scaled_backward
from grokking.config import TrainConfig
from grokking.data import Dataset
from grokking.fused import build_loss
from grokking.losses import DTYPES, zero_correct_class_grad
from grokking.native import STEPS, NativeStep, NativeUnavailable, load, unsupported
from grokking.validation import ConfigError


@functools.cache
def notice(message: str) -> None:
    print(message, file=sys.stderr)  # once per process


def native_module(cpu_kernel: str) -> ModuleType | None:
    """The module of the C++ kernels, or None with ``cpu_kernel=torch`` or where it cannot be built
    (``auto``: a one-line notice; ``native``: a config error)."""
    if cpu_kernel == "torch":
        return None
    try:
        return load()
    except NativeUnavailable as e:
        if cpu_kernel == "native":
            raise ConfigError(
                f"cpu_kernel=native cannot run: {e}; choose one of: cpu_kernel=auto, cpu_kernel=torch"
            ) from e
        notice(f"cpu_kernel=auto: using autograd and torch's optimizers ({e})")
        return None


def native_step(cfg: TrainConfig, model: torch.nn.Module, data: Dataset) -> NativeStep | None:
    """The C++ training step for this run, or None where ``cfg.cpu_kernel`` and the run leave autograd
    (under ``cpu_kernel=auto`` a run outside the kernels' capabilities says so in one line)."""
    if cfg.cpu_kernel == "torch" or data.train_x.device.type != "cpu":
        return None
    if (why := unsupported(cfg)) is not None:  # cpu_kernel=native was refused by validation
        notice(f"cpu_kernel=auto: the C++ training step does not compute {why}; training through autograd")
        return None
    module = native_module(cfg.cpu_kernel)  # None with cpu_kernel=torch
    return None if module is None else STEPS[cfg.model.name](module, cfg, model, data)


class TrainStep:
    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, data: Dataset, optimizer):
        self.model, self.data, self.optimizer = model, data, optimizer
        self.params = list(model.parameters())
        self.loss_fn = build_loss(cfg.loss)  # fused softmax/StableMax CE where possible: same values, fewer passes
        self.loss_dtype = DTYPES[cfg.precision.loss_dtype]
        self.temperature, self.penalty = cfg.loss.temperature, cfg.loss.logit_norm_penalty
        self.log2_scale = cfg.precision.backward_log2_scale
        self.intervention = partial(zero_correct_class_grad, y=data.train_y)
        self.native = native_step(cfg, model, data)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits / self.temperature if self.temperature != 1.0 else logits

    def __call__(self, intervene: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, per-sample losses, summed objective) of the training set, gradients in ``.grad``.
        ``intervene`` zeroes the gradient through every correct-class logit (Fig. 8)."""
        if self.native is not None:
            return self.native(intervene)  # it writes every gradient
        logits = self.forward(self.data.train_x)
        if intervene:
            logits.register_hook(self.intervention)
        per_sample = self.loss_fn(logits, self.data.train_y, self.loss_dtype)
        objective = per_sample.mean(-1)
        if self.penalty:
            objective = objective + self.penalty * logits.pow(2).sum(-1).mean(-1)
        loss = objective.sum()  # replicas are independent: their losses add
        self.optimizer.zero_grad(set_to_none=True)
        scaled_backward(loss, logits, self.params, self.log2_scale, self.loss_dtype)
        return logits, per_sample, loss
