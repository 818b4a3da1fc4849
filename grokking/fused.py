"""The softmax and StableMax cross-entropies of :mod:`grokking.losses` as single autograd nodes.

Same per-sample values, bit for bit, and the same gradients up to rounding, from a hand-written
backward pass: a handful of passes over the ``(R, N, C)`` logits instead of the dozen that autograd
records for the readable definitions. Training uses these; :mod:`grokking.losses` stays the spec
(tests compare the two).

Both keep the property the paper is about: when Σ_k exp(z_k - max z) rounds to 1 (Softmax
Collapse), the per-sample loss is exactly 0 and so is the gradient through the correct class; the
sum is taken in :func:`grokking.losses.exp_total`'s order (the largest term last).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from grokking.losses import LOSSES, REDUCED, pick


def scatter_sub_(grad: torch.Tensor, y: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``grad[..., y] -= value`` in place, row by row."""
    return grad.scatter_add_(-1, y.expand(grad.shape[:-1]).unsqueeze(-1), -value.unsqueeze(-1))


class SoftmaxCE(torch.autograd.Function):
    """SCE = log Σ_k exp(z_k - max z) - (z_y - max z); ∂/∂z = exp(z - max z) / Σ - onehot(y).
    Σ as :func:`grokking.losses.exp_total` sums it. float32 and float64 only: in float16 and
    bfloat16 :func:`softmax_cross_entropy` is the spec itself (torch's ``log_softmax``)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        in_dtype = z.dtype
        z = z.to(dtype)
        m, top = z.max(-1, keepdim=True)
        shifted_y = pick(z, y) - m.squeeze(-1)
        e = (z - m).exp_()
        largest = e.gather(-1, top)  # exp_total's order, in place: the others first, then the largest
        total = (e.scatter_(-1, top, 0).sum(-1, keepdim=True) + largest).squeeze(-1)
        e.scatter_(-1, top, largest)
        ctx.save_for_backward(e, total, y)
        ctx.in_dtype = in_dtype
        return torch.log(total) - shifted_y

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        e, total, y = ctx.saved_tensors
        grad = e.mul_((grad_out / total).unsqueeze(-1))  # e is not needed again: reuse its memory
        return scatter_sub_(grad, y, grad_out).to(ctx.in_dtype), None, None


class StableMaxCE(torch.autograd.Function):
    """StCE = log Σ_k s(z_k) - log s(z_y); ∂/∂z_k = s'(z_k) / Σ_j s(z_j) - onehot(y)_k s'(z_y) / s(z_y).

    s(x) = a / b with a = 1 + max(x, 0) and b = 1 - min(x, 0): for x ≥ 0 that is (1 + x) / 1, for
    x < 0 it is 1 / (1 - x), both rounded exactly as in :func:`grokking.losses.stablemax_s`, and
    s'(x) = (1 / b)². No masks: ``torch.where`` costs several elementwise passes on CPU.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        in_dtype = z.dtype
        z = z.to(dtype)
        inv_b = torch.clamp(z, max=0).neg_().add_(1).reciprocal_()  # 1 / (1 - min(z, 0))
        s = torch.clamp(z, min=0).add_(1).mul_(inv_b)  # (1 + max(z, 0)) · (1 / b)
        total = s.sum(-1)
        s_y = pick(s, y)
        ctx.save_for_backward(inv_b, total, s_y, y)
        ctx.in_dtype = in_dtype
        return torch.log(total) - torch.log(s_y)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        inv_b, total, s_y, y = ctx.saved_tensors
        slope = inv_b.square()  # s'(z)
        grad = slope.mul_((grad_out / total).unsqueeze(-1))
        slope_y = pick(inv_b, y).square()
        return scatter_sub_(grad, y, grad_out * slope_y / s_y).to(ctx.in_dtype), None, None


def softmax_cross_entropy(z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype in REDUCED:  # torch's log_softmax and its autograd: the official code's gradient, bit for bit
        return LOSSES["softmax"].fn(z, y, dtype)
    return SoftmaxCE.apply(z, y, dtype)


def stablemax_cross_entropy(z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return StableMaxCE.apply(z, y, dtype)


FUSED: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.dtype], torch.Tensor]] = {  # loss name -> fused version
    "softmax": softmax_cross_entropy,
    "stablemax": stablemax_cross_entropy,
}


def training_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.dtype], torch.Tensor]:
    """The fused version of loss ``name`` where there is one, else the definition in :mod:`losses`."""
    return FUSED.get(name, LOSSES[name].fn)
