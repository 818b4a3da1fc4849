"""StableMax cross-entropy with the conventions of ``torch.nn.functional.cross_entropy``, for use in
any model: ``grokking.stablemax_cross_entropy`` and ``grokking.StableMaxCrossEntropyLoss``.

Both run the autograd node that training uses (:class:`grokking.fused.StableMaxCE`), so there is
one implementation of the loss; this module only adds the class dimension, ``ignore_index`` and the
reductions around it.
"""

from __future__ import annotations

import torch

from grokking.fused import StableMaxCE
from grokking.losses import stablemax

__all__ = ["stablemax", "stablemax_cross_entropy", "StableMaxCrossEntropyLoss"]

REDUCTIONS = ("mean", "sum", "none")


def stablemax_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    ignore_index: int = -100,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """-log StableMax(input)_target, like ``F.cross_entropy`` with StableMax in place of softmax.

    ``input``: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``; ``target``: class
    indices ``(N)``, ``(N, d1, ...)`` or ``()``. ``reduction``: ``"mean"`` (over the targets that are
    not ``ignore_index``), ``"sum"`` or ``"none"`` (per target, 0 where ignored). The loss is computed
    in ``dtype`` when given, else in the input's dtype, and returned in the input's dtype.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not valid; choose one of: {', '.join(REDUCTIONS)}")
    if target.is_floating_point():
        raise TypeError("target must hold class indices (an integer tensor)")
    z = input.movedim(1, -1) if input.dim() >= 2 else input  # classes last
    kept = target != ignore_index
    losses = StableMaxCE.apply(z, target.masked_fill(~kept, 0), dtype or input.dtype)
    losses = losses.masked_fill(~kept, 0)
    if reduction == "none":
        return losses.to(input.dtype)
    total = losses.sum()
    if reduction == "sum":
        return total.to(input.dtype)
    return (total / kept.sum()).to(input.dtype)


class StableMaxCrossEntropyLoss(torch.nn.Module):
    """:func:`stablemax_cross_entropy` as a module, like ``torch.nn.CrossEntropyLoss``."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100, dtype: torch.dtype | None = None):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} is not valid; choose one of: {', '.join(REDUCTIONS)}")
        self.reduction, self.ignore_index, self.dtype = reduction, ignore_index, dtype

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return stablemax_cross_entropy(input, target, self.reduction, self.ignore_index, self.dtype)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, dtype={self.dtype}"
