"""The authors' official code, imported for same-computation tests (tests/test_official_equivalence.py).

The two snapshots of their repository (``release-0cc9e8d``, as published, and ``fixed-720d244``, after
their bug-fix merge) lie beside this repository at ``../shared/official`` (CI) or wherever the
environment variable ``GROKKING_OFFICIAL_DIR`` points: at the folder holding both, or at one clone
(taken as fixed-720d244 unless its folder's name ends in 0cc9e8d).
Their modules (``models``, ``utils``, ``orthograd``, ``logger``) are imported from there unmodified,
each snapshot under its own names, so that both can be used in one process. Its ``datasets.py``
imports ``torchvision`` without using it for these tasks; a stub package stands in for it where
torchvision is not installed.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import tempfile
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
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

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ("release-0cc9e8d", "fixed-720d244")
MODULES = ("constants", "binary_operations", "datasets", "models", "orthograd", "utils", "logger")


def snapshot_dirs() -> tuple[dict[str, Path], str]:
    """The snapshot folders found ({name: path}) and, when none is, why (one line)."""
    env = os.environ.get("GROKKING_OFFICIAL_DIR")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "official"
    if (root / "utils.py").is_file() and (root / "orthograd.py").is_file():  # one clone
        commit = next((s for s in SNAPSHOTS if root.name == s or root.name.endswith(s.split("-")[1])), None)
        return {commit or SNAPSHOTS[1]: root}, ""
    found = {s: root / s for s in SNAPSHOTS if (root / s / "utils.py").is_file()}
    if found:
        return found, ""
    where = "GROKKING_OFFICIAL_DIR" if env else "../shared/official"
    return {}, f"the official code is not at {root} ({where}); set GROKKING_OFFICIAL_DIR to a clone"


def torchvision_stub(folder: Path) -> bool:
    """Write a stub ``torchvision`` package (an empty ``datasets`` submodule) into ``folder`` unless
    torchvision is installed; whether it did."""
    try:
        importlib.import_module("torchvision")
        return False
    except ImportError:
        (folder / "torchvision").mkdir()
        (folder / "torchvision" / "__init__.py").write_text("")
        (folder / "torchvision" / "datasets.py").write_text("")
        return True


@functools.cache
def load(name: str) -> SimpleNamespace:
    """The modules of snapshot ``name``, imported from its folder unmodified.

    The snapshots import each other's modules by plain names (``from models import MLP``), so each
    is imported with its folder first on ``sys.path`` and those names are taken out of
    ``sys.modules`` afterwards (and whatever they named before is put back)."""
    folder = snapshot_dirs()[0][name]
    names = (*MODULES, "torchvision", "torchvision.datasets")
    saved = {m: sys.modules.pop(m) for m in names if m in sys.modules}
    with tempfile.TemporaryDirectory() as stub:
        paths = [str(folder)] + ([stub] if torchvision_stub(Path(stub)) else [])
        sys.path[:0] = paths
        try:
            modules = {m: importlib.import_module(m) for m in MODULES if (folder / f"{m}.py").is_file()}
        finally:
            del sys.path[: len(paths)]
            for m in names:
                sys.modules.pop(m, None)
            sys.modules.update(saved)
    return SimpleNamespace(name=name, folder=folder, **modules)


def official_args(snap: SimpleNamespace, flags: list[str]):
    """The argparse namespace the snapshot's ``grokking_experiments.py`` gets from ``flags``
    (its own parser, so every default is the official one)."""
    argv = sys.argv
    sys.argv = ["grokking_experiments.py", *flags]
    try:
        return snap.utils.parse_args()[1]
    finally:
        sys.argv = argv


@functools.cache
def official_dataset(name: str, operation: str, p: int):
    """The snapshot's ``AlgorithmicDataset`` (one-hot inputs, all p² pairs in order (a, b))."""
    snap = load(name)
    return snap.datasets.AlgorithmicDataset(
        snap.utils.BINARY_OPERATION_MAP[operation], p=p, input_size=p, output_size=p
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


def official_loss(snap: SimpleNamespace, args) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The mean training loss the snapshot's script would use for ``args``."""
    u = snap.utils
    if hasattr(args, "cross_entropy_dtype"):  # fixed-720d244
        fn = {"cross_entropy": u.softmax_cross_entropy, "stablemax": u.stablemax_cross_entropy}[args.loss_function]
        return functools.partial(fn, dtype=getattr(torch, args.cross_entropy_dtype))
    softmax = {16: u.cross_entropy_float16, 32: u.cross_entropy_float32, 64: u.cross_entropy_float64}
    return {"cross_entropy": softmax[args.softmax_precision], "stablemax": u.stablemax_cross_entropy}[
        args.loss_function
    ]


@dataclass
class OfficialTraining:
    """The snapshot's model, optimizer and loss as its script builds them, and the training rows."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One full-batch step; the logits and the loss it took."""
        self.model.train()
        self.optimizer.zero_grad()
        output = self.model(self.x)
        loss = self.loss_fn(output, self.y)
        loss.backward()
        self.optimizer.step()
        return output, loss


def official_run(name: str, flags: list[str], train_idx: torch.Tensor) -> OfficialTraining:
    """The snapshot's model, loss and optimizer as its script builds them from ``flags``, on the
    training pairs ``train_idx`` (indices into all p² pairs), in that row order."""
    snap = load(name)
    args = official_args(snap, flags)
    if hasattr(args, "train_dtype"):
        dtype = getattr(torch, args.train_dtype)
    else:  # release-0cc9e8d
        dtype = snap.constants.FLOAT_PRECISION_MAP[args.train_precision]
        if args.orthogonal_gradients:
            raise ValueError("release-0cc9e8d builds ⊥Grad in its script, not in an importable function")
    dataset = official_dataset(name, args.binary_operation, args.modulo)
    x, y = dataset.data[train_idx].to(dtype), dataset.targets[train_idx].long()
    torch.manual_seed(args.seed)
    model = snap.utils.get_model(args)
    optimizer = snap.utils.get_optimizer(model, args)
    model.to(dtype)  # after the optimizer, as the script does (in place: the optimizer keeps its parameters)
    return OfficialTraining(model, optimizer, official_loss(snap, args), x, y)


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
