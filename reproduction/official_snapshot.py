"""The authors' official code, imported in-process from its snapshot folders, unmodified, and its
training built from a run's flags as its script builds it: for the same-computation tests
(tests/test_official_equivalence.py) and ``scripts/official_same_start.py``. Running the official
script itself, in a scratch copy, is :mod:`reproduction.official`'s job.

The two snapshots of their repository (``release-0cc9e8d``, as published, and ``fixed-720d244``, after
their bug-fix merge) lie beside this repository at ``../shared/official`` or wherever the environment
variable ``GROKKING_OFFICIAL_DIR`` points (:func:`snapshot_dirs`). Their modules (``models``,
``utils``, ``orthograd``, ``logger``, ...) are imported each snapshot under its own names, so that
both can be used in one process. Its ``datasets.py`` imports ``torchvision`` without using it for
these tasks; a stub package stands in for it where torchvision is not installed.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from reproduction.official import DEFAULT_DIR, ROOT

SEARCHED = (DEFAULT_DIR.parent, ROOT.parent.parent / "shared" / "official")  # beside the checkout, or one up
RELEASE, FIXED = "release-0cc9e8d", "fixed-720d244"
SNAPSHOTS = (RELEASE, FIXED)
MODULES = ("constants", "binary_operations", "datasets", "models", "orthograd", "utils", "logger")


def snapshot_dirs() -> tuple[dict[str, Path], str]:
    """The snapshot folders found ({name: path}) and, when none is, why (one line).

    ``GROKKING_OFFICIAL_DIR`` names either one clone (taken as fixed-720d244 unless its folder's name
    ends in 0cc9e8d) or the folder holding both; without it, ``shared/official`` beside this checkout
    or one folder further up is searched."""
    env = os.environ.get("GROKKING_OFFICIAL_DIR")
    for root in [Path(env)] if env else SEARCHED:
        if (root / "utils.py").is_file() and (root / "orthograd.py").is_file():  # one clone
            commit = next((s for s in SNAPSHOTS if root.name == s or root.name.endswith(s.split("-")[1])), None)
            return {commit or FIXED: root}, ""
        found = {s: root / s for s in SNAPSHOTS if (root / s / "utils.py").is_file()}
        if found:
            return found, ""
    where = env or " or ".join(map(str, SEARCHED))
    return {}, f"the official code is not at {where}; set GROKKING_OFFICIAL_DIR to a clone"


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
