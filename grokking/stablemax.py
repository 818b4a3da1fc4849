"""StableMax cross-entropy with the conventions of ``torch.nn.functional.cross_entropy``, for use in
any model: ``grokking.stablemax_cross_entropy`` and ``grokking.StableMaxCrossEntropyLoss``.

Class-index targets without label smoothing run one autograd node, :class:`grokking.fused.StableMaxNLL`
(the per-target values of the node training uses, the weights, ``ignore_index`` and the reduction):
a hand-written backward at first order, a differentiable one when a higher order is requested.
Label smoothing runs the definition through plain autograd (:func:`stablemax_log_probs`).
"""

from __future__ import annotations

import torch

from grokking.fused import StableMaxNLL
from grokking.losses import pick, stablemax, stablemax_s

__all__ = ["stablemax", "stablemax_cross_entropy", "stablemax_log_probs", "StableMaxCrossEntropyLoss"]

REDUCTIONS = ("mean", "sum", "none")
REDUCED = (torch.float16, torch.bfloat16)  # autocast runs cross_entropy in float32 for these


def stablemax_log_probs(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log StableMax(input) along ``dim`` = log s(x_i) - log Σ_k s(x_k), through plain autograd."""
    s = stablemax_s(input)
    return torch.log(s) - torch.log(s.sum(dim, keepdim=True))


def check_options(reduction: str, label_smoothing: float) -> None:
    if isinstance(reduction, torch.Tensor):
        raise TypeError("reduction is a tensor: pass class weights by keyword, weight=...")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not valid; choose one of: {', '.join(REDUCTIONS)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing} is not valid; it must be between 0.0 and 1.0")


def check(
    input: torch.Tensor, target: torch.Tensor, reduction: str, weight: torch.Tensor | None, label_smoothing: float
) -> None:
    check_options(reduction, label_smoothing)
    if not input.is_floating_point():
        raise TypeError(f"input must hold floating-point logits, got dtype {input.dtype}")
    if target.is_floating_point():
        raise TypeError("target must hold class indices (an integer tensor); class probabilities are not supported")
    if input.dim() == 0:
        raise ValueError("input must be (C,), (N, C) or (N, C, d1, ...); got a 0-dim tensor")
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target of shape {tuple(target.shape)} does not match input of shape {tuple(input.shape)}:"
            f" expected {expected} (input without its class dimension 1)"
        )
    classes = input.shape[0 if input.dim() == 1 else 1]
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != classes):
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} is not valid; expected one value per class: ({classes},)"
        )


def stablemax_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    ignore_index: int = -100,
    dtype: torch.dtype | None = None,
    *,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """-log StableMax(input)_target, ``F.cross_entropy`` with StableMax in place of softmax.

    ``input``: logits ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``; ``target``: class
    indices ``(N)``, ``(N, d1, ...)`` or ``()``. ``weight``: a weight per class ``(C,)``.
    ``reduction``: ``"mean"`` (divided by the summed weight of the targets that are not
    ``ignore_index``: their count without ``weight``), ``"sum"`` or ``"none"`` (per target, 0 where
    ignored). ``label_smoothing`` ε: (1 - ε)·loss + ε/C · Σ_c w_c (-log p_c), torch's formula.

    The loss is computed in ``dtype`` when given, else in the input's dtype, and returned in the
    input's dtype. Under ``torch.autocast`` a float16 or bfloat16 input is first cast to float32, as
    autocast does for ``F.cross_entropy``. Differentiable at every order.
    """
    check(input, target, reduction, weight, label_smoothing)
    autocast = torch.is_autocast_enabled(input.device.type)
    if autocast and input.dtype in REDUCED:
        input = input.float()  # autocast's float32 policy for cross_entropy
    compute = dtype or input.dtype
    z = input.movedim(1, -1) if input.dim() > 2 else input  # classes last
    if weight is None and not label_smoothing and input.device.type == "cpu" and not (target == ignore_index).any():
        # nothing to weigh or leave out (a check that costs no device sync on the CPU)
        y, w, denominator = target, None, target.numel() if reduction == "mean" else None
    else:
        kept = target != ignore_index
        y = torch.where(kept, target, 0)  # any valid class: an ignored target's weight is 0
        w = kept.to(compute) if weight is None else weight.detach().to(compute)[y] * kept
        if label_smoothing:
            return smoothed(z, y, kept, w, weight, reduction, label_smoothing, compute).to(input.dtype)
        denominator = w.sum() if reduction == "mean" else None
    if autocast:  # compute in ``compute``, not in the dtypes autocast would choose op by op
        with torch.autocast(input.device.type, enabled=False):
            return StableMaxNLL.apply(z, y, w, denominator, reduction, compute, input.dtype)
    return StableMaxNLL.apply(z, y, w, denominator, reduction, compute, input.dtype)


def smoothed(
    z: torch.Tensor,
    y: torch.Tensor,
    kept: torch.Tensor,
    w: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: str,
    epsilon: float,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The label-smoothed loss of torch's ``cross_entropy``, on log StableMax by plain autograd:
    (1 - ε)·nll + ε/C·smooth with smooth_n = Σ_c w_c (-log p_c) (0 where ignored), the mean of both
    divided by Σ w of the targets kept."""
    with torch.autocast(z.device.type, enabled=False):
        log_p = stablemax_log_probs(z.to(dtype))
        nll = -pick(log_p, y) * w
        per_class = log_p if weight is None else log_p * weight.detach().to(dtype)
        smooth = -per_class.sum(-1) * kept
        classes = z.shape[-1]
        if reduction == "none":
            return (1 - epsilon) * nll + (epsilon / classes) * smooth
        if reduction == "sum":
            return (1 - epsilon) * nll.sum() + (epsilon / classes) * smooth.sum()
        total = w.sum()
        return (1 - epsilon) * nll.sum() / total + (epsilon / classes) * smooth.sum() / total


class StableMaxCrossEntropyLoss(torch.nn.Module):
    """:func:`stablemax_cross_entropy` as a module, like ``torch.nn.CrossEntropyLoss`` (``weight`` is
    a buffer, so it follows ``.to(device)``)."""

    def __init__(
        self,
        reduction: str = "mean",
        ignore_index: int = -100,
        dtype: torch.dtype | None = None,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        check_options(reduction, label_smoothing)
        self.register_buffer("weight", weight)
        self.ignore_index, self.reduction, self.label_smoothing, self.dtype = (
            ignore_index,
            reduction,
            label_smoothing,
            dtype,
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return stablemax_cross_entropy(
            input,
            target,
            self.reduction,
            self.ignore_index,
            self.dtype,
            weight=self.weight,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return (
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
            f"label_smoothing={self.label_smoothing}, dtype={self.dtype}"
        )
