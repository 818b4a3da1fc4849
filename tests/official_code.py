"""Test helpers around the authors' official code (tests/test_official_equivalence.py): trajectories
of both codes from identical weights, and the official per-sample losses and SC flag. The snapshots
are found and imported by :mod:`reproduction.official_snapshot`, re-exported here."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grokking.cli import compose
from grokking.data import build_dataset
from grokking.losses import DTYPES
from grokking.metrics import correct_counts
from grokking.models import build_model
from grokking.optim import build_optimizer
from grokking.step import TrainStep, native_module
from grokking.train import to_config
from grokking.validation import validate
from reproduction.official_snapshot import (  # noqa: F401 (re-exported for the tests)
    FIXED,
    RELEASE,
    load,
    official_run,
    snapshot_dirs,
)


@dataclass
class Trajectory:
    """Per full-batch step: the mean training loss before the update and the number of correctly
    classified training samples. ``init``: the weights it started from, one per layer in nn.Linear's
    layout (out, in); ``grads`` and ``weights``: after the last step, the gradient the optimizer
    stepped with (⊥Grad's projection where it wraps the optimizer) and the weights, same layout;
    ``hyper``: the base optimizer's hyperparameters."""

    loss: list[float]
    correct: list[int]
    init: list[torch.Tensor]
    hyper: dict[str, Any]
    grads: list[torch.Tensor] | None = None
    weights: list[torch.Tensor] | None = None


HYPER_KEYS = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov", "maximize")


def hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(group[k]) if k == "betas" else group[k]) for k in HYPER_KEYS if k in group}


def official_trajectory(name: str, flags: list[str], train_idx: torch.Tensor, steps: int) -> Trajectory:
    """``steps`` full-batch steps of :func:`official_run`, always in the row order ``train_idx``
    (the script reshuffles the rows every step)."""
    run = official_run(name, flags, train_idx)
    init = [layer.weight.detach().clone() for layer in run.model.layers]
    base = getattr(run.optimizer, "base_optimizer", run.optimizer)
    traj = Trajectory([], [], init, hyperparameters(base.param_groups[0]))
    for _ in range(steps):
        output, loss = run.step()
        traj.loss.append(loss.item())
        traj.correct.append(int((output.argmax(1) == run.y).sum()))
    if steps:
        traj.grads = [layer.weight.grad.clone() for layer in run.model.layers]
    traj.weights = [layer.weight.detach().clone() for layer in run.model.layers]
    return traj


def our_trajectory(overrides: list[str], kernel: str, init: list[torch.Tensor], steps: int) -> Trajectory:
    """``steps`` full-batch steps of this repository's training step and optimizer, built as
    ``grokking.train`` builds them (TrainStep, build_optimizer with ``cpu_kernel``'s C++ module),
    from the weights ``init`` (nn.Linear layout (out, in), one per layer)."""
    cfg, _ = to_config(compose(["device=cpu", f"cpu_kernel={kernel}", *overrides]))
    validate(cfg)
    dtype, cpu = DTYPES[cfg.precision.model_dtype], torch.device("cpu")
    data = build_dataset(cfg.dataset).to(cpu, dtype)
    model = build_model(cfg.model, data, [cfg.seed]).to(cpu, dtype)
    with torch.no_grad():
        for w, w0 in zip(model.weights, init, strict=bool(init)):
            w[0].copy_(w0.T)  # ours: (replica, in, out), the first layer's rows picked by the tokens
    params = list(model.parameters())
    optimizer = build_optimizer(cfg.optimizer, params, native_module(cfg.cpu_kernel))
    step = TrainStep(cfg, model, data, optimizer)
    traj = Trajectory([], [], init, hyperparameters(optimizer.param_groups[0]))
    for _ in range(steps):
        logits, per_sample, _ = step()
        traj.loss.append(per_sample.mean(-1)[0].item())
        traj.correct.append(int(correct_counts(logits, data.train_y)[0]))
        optimizer.step()
    if steps:
        traj.grads = [w.grad[0].T.clone() for w in model.weights]
    traj.weights = [w.detach()[0].T.clone() for w in model.weights]
    return traj


def official_sc_flags(name: str, z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The snapshot's SC flag of every row of ``z``: its logger's softmax-collapse fraction of each
    row alone (1.0 or 0.0), for a run whose loss is in ``dtype``."""
    snap = load(name)
    logger = snap.logger.MetricsLogger(1, 1)
    bits = str(dtype).removeprefix("torch.float")
    args = Namespace(cross_entropy_dtype=f"float{bits}", softmax_precision=int(bits))
    flags = []
    for row in z:
        logger._train_output = row[None]
        flags.append(logger.compute_softmax_collapse(None, 0, 0, args, None)[0]["value"] == 1.0)
    return torch.tensor(flags)


def official_softmax_ce(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.dtype], torch.Tensor]:
    """The snapshot's per-sample softmax CE in ``dtype`` (the release has one function per dtype)."""
    u = load(name).utils
    if hasattr(u, "softmax_cross_entropy"):
        return lambda z, y, dtype: u.softmax_cross_entropy(z, y, reduction="none", dtype=dtype)
    fns = {torch.float16: u.cross_entropy_float16, torch.float32: u.cross_entropy_float32}
    fns[torch.float64] = u.cross_entropy_float64
    return lambda z, y, dtype: fns[dtype](z, y, reduction="none").reshape(-1)


def official_stablemax_ce(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.dtype], torch.Tensor]:
    """The snapshot's per-sample StableMax CE in ``dtype`` (the release's is always float64)."""
    u = load(name).utils
    if "dtype" in u.stablemax_cross_entropy.__code__.co_varnames:
        return lambda z, y, dtype: u.stablemax_cross_entropy(z, y, reduction="none", dtype=dtype).reshape(-1)
    return lambda z, y, dtype: u.stablemax_cross_entropy(z, y, reduction="none").reshape(-1)


def loss_and_correct_grad(fn, z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype):
    """Per-sample losses of ``fn(z, y, dtype)`` and ∂loss_i/∂z_{i, y_i} (upstream gradient 1 per sample)."""
    z = z.detach().clone().requires_grad_()
    loss = fn(z, y, dtype)
    loss.backward(torch.ones_like(loss))
    return loss.detach(), z.grad.gather(-1, y[:, None])[:, 0]


def native_loss_and_correct_grad(loss_kind: int, z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype):
    """The same through the C++ kernel's loss (``grokking/native``, the training step's own code):
    a two-layer MLP with identity inputs and an identity first layer has the logits ``z`` as its
    second layer's weight, whose gradient is then each row's loss gradient / N. N is padded to a
    power of two so that the scalings by N and by the backward scale are exact."""
    from grokking.native import load as load_native

    module = load_native()
    n = len(y)
    padded = 1 << (n - 1).bit_length()
    rows = torch.arange(padded).clamp(max=n - 1)
    z, y = z[rows].contiguous(), y[rows].contiguous()
    eye = torch.eye(padded, dtype=z.dtype)
    grads = [torch.empty_like(eye), torch.empty_like(z)]
    _, loss = module.mlp_step([eye, z], [], eye, False, y, loss_kind, dtype, 2.0**40, 64, grads)
    grad_y = (grads[1] * padded).gather(-1, y[:, None])[:, 0]
    return loss[:n], grad_y[:n]
