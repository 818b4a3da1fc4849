"""Per-epoch hooks: what the training loop does at each epoch besides the step and its metric columns.

Each hook is one entry of :data:`HOOKS`, built from the config (``None`` where the run does not use
it). Before every step the loop hands each hook the :class:`Epoch` about to be trained; a hook may
record something (parameter snapshots, ``snapshot_every``) or set the step's options (the Softmax
Collapse intervention, ``sc_intervention_epoch``). Metric columns measured after the update
(``absorbed_fraction``) are entries of :data:`grokking.metrics.COLUMNS` like every other column.
Adding a hook is one ``register`` call:

    @HOOKS.register("my_hook")
    def my_hook(cfg, run) -> Hook | None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grokking.registry import Registry


@dataclass
class Epoch:
    """The epoch about to be trained: ``index`` (the model has had that many updates), the
    parameters, and the options of its step, which hooks set: ``intervene`` zeroes the gradient
    through every correct-class logit (Fig. 8)."""

    index: int
    params: list[torch.Tensor]
    intervene: bool = False


class Hook:
    def before_step(self, epoch: Epoch) -> None:
        """Called before the step of every epoch."""


@dataclass(frozen=True)
class HookEntry:
    """``build(cfg, run)``: the hook of a run (``run`` is its :class:`grokking.run_dir.RunDir`,
    for a hook that keeps something there), or None where the config leaves it off."""

    build: Callable[[Any, Any], Hook | None]


HOOKS: Registry[HookEntry] = Registry("step hook", HookEntry)


def build_hooks(cfg: Any, run: Any) -> list[Hook]:
    """The hooks this run uses, in registration order."""
    hooks = (entry.build(cfg, run) for entry in HOOKS.entries.values())
    return [hook for hook in hooks if hook is not None]


class Snapshots(Hook):
    """``snapshot_every`` k > 0: every parameter, flattened per replica (float32, on the host), at
    each epoch divisible by k, before its step; the run directory saves them (``snapshots.pt``)."""

    def __init__(self, every: int, taken: list[tuple[int, torch.Tensor]]):
        self.every, self.taken = every, taken

    def before_step(self, epoch: Epoch) -> None:
        if epoch.index % self.every == 0:
            flat = torch.cat([p.detach().flatten(1) for p in epoch.params], 1)
            self.taken.append((epoch.index, flat.float().cpu()))


class Intervention(Hook):
    """``sc_intervention_epoch`` e: from epoch e on, every step zeroes the gradient through the
    correct-class logits, so that Softmax Collapse cannot stop learning (Fig. 8)."""

    def __init__(self, from_epoch: int):
        self.from_epoch = from_epoch

    def before_step(self, epoch: Epoch) -> None:
        epoch.intervene = epoch.index >= self.from_epoch


HOOKS.register(
    "snapshots", lambda cfg, run: Snapshots(cfg.snapshot_every, run.snapshots) if cfg.snapshot_every else None
)
HOOKS.register(
    "intervention",
    lambda cfg, run: Intervention(cfg.sc_intervention_epoch) if cfg.sc_intervention_epoch is not None else None,
)
