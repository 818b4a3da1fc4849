"""The softmax and StableMax cross-entropies of :mod:`grokking.losses` as single autograd nodes.

Same per-sample values, bit for bit, and the same gradients up to rounding, from a hand-written
backward pass: a handful of passes over the ``(R, N, C)`` logits instead of the dozen that autograd
records for the readable definitions. Training uses these (:func:`build_loss`, the loss of a
config); :mod:`grokking.losses` stays the spec (tests compare the two), and imports nothing from here.

Both keep the property the paper is about: when Σ_k exp(z_k - max z) rounds to 1 (Softmax
Collapse), the per-sample loss is exactly 0 and so is the gradient through the correct class; the
sum is taken in :func:`grokking.losses.exp_total`'s order (the largest term last).

Every node runs its hand-written backward at first order. When a higher order is requested
(``create_graph=True``: double backward, gradient penalties, Hessian-vector products), its backward
computes the same gradient from differentiable operations on the node's input instead, so every
further order is autograd's own and exact. :class:`StableMaxNLL` is the node behind the public
``grokking.stablemax_cross_entropy``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch

from grokking.losses import LOSSES, REDUCED, LossFn, exp_total, pick, stablemax_s

if TYPE_CHECKING:
    from grokking.config import LossConfig  # generated from the loss parameters


def scatter_sub_(grad: torch.Tensor, y: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``grad[..., y] -= value`` in place, row by row."""
    return grad.scatter_add_(-1, y.expand(grad.shape[:-1]).unsqueeze(-1), -value.unsqueeze(-1))


class SoftmaxCE(torch.autograd.Function):
    """SCE = log Σ_k exp(z_k - max z) - (z_y - max z); ∂/∂z = exp(z - max z) / Σ - onehot(y).
    Σ as :func:`grokking.losses.exp_total` sums it. float32 and float64 only: in float16 and
    bfloat16 :func:`softmax_cross_entropy` is the spec itself (torch's ``log_softmax``)."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        z = input.to(dtype)
        m, top = z.max(-1, keepdim=True)
        shifted_y = pick(z, y) - m.squeeze(-1)
        e = (z - m).exp_()
        largest = e.gather(-1, top)  # exp_total's order, in place: the others first, then the largest
        total = (e.scatter_(-1, top, 0).sum(-1, keepdim=True) + largest).squeeze(-1)
        e.scatter_(-1, top, largest)
        ctx.save_for_backward(input, e, total, y)
        ctx.dtype = dtype
        return torch.log(total) - shifted_y

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        input, e, total, y = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate again
            return softmax_grad_differentiable(input.to(ctx.dtype), y, grad_out).to(input.dtype), None, None
        grad = e.mul_((grad_out / total).unsqueeze(-1))  # e is not needed again: reuse its memory
        return scatter_sub_(grad, y, grad_out).to(input.dtype), None, None


def softmax_grad_differentiable(z: torch.Tensor, y: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """:class:`SoftmaxCE`'s gradient from differentiable operations on ``z`` (the shift max z is a
    constant: the softmax does not depend on it)."""
    m, top = z.detach().max(-1, keepdim=True)
    e = torch.exp(z - m)
    grad = e * (grad_out / exp_total(e, top)).unsqueeze(-1)
    return grad.scatter_add(-1, y.expand(z.shape[:-1]).unsqueeze(-1), -grad_out.unsqueeze(-1))


class StableMaxCE(torch.autograd.Function):
    """StCE = log Σ_k s(z_k) - log s(z_y); ∂/∂z_k = s'(z_k) / Σ_j s(z_j) - onehot(y)_k s'(z_y) / s(z_y).

    s(x) = max(x, 0) + 1 / b with b = 1 - min(x, 0): for x ≥ 0 that is x + 1 (1 / b = 1), for x < 0
    it is 1 / (1 - x), both rounded exactly as in :func:`grokking.losses.stablemax_s`, and
    s'(x) = (1 / b)². No masks: ``torch.where`` costs several elementwise passes on CPU.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        index = y.expand(z.shape[:-1]).unsqueeze(-1)
        inv_b, total, s_y = stablemax_parts(z.to(dtype), index)
        ctx.save_for_backward(z, inv_b, total, s_y, index)
        ctx.dtype = dtype
        return (torch.log(total) - torch.log(s_y)).squeeze(-1)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        z, inv_b, total, s_y, index = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate again
            return stablemax_grad_differentiable(z.to(ctx.dtype), index, grad_out).to(z.dtype), None, None
        return stablemax_grad(inv_b, total, s_y, index, grad_out).to(z.dtype), None, None


def stablemax_parts(z: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1 / b (shape of ``z``), Σ_k s(z_k) and s(z_y) (shape ``(..., 1)``) of :class:`StableMaxCE`;
    ``index``: the correct classes, shape ``(..., 1)``. Two allocations the size of ``z``."""
    inv_b = torch.clamp(z, max=0).neg_().add_(1).reciprocal_()  # 1 / (1 - min(z, 0))
    s = torch.clamp(z, min=0).add_(inv_b)  # max(z, 0) + 1 / b
    return inv_b, s.sum(-1, keepdim=True), s.gather(-1, index)


def stablemax_grad(
    inv_b: torch.Tensor, total: torch.Tensor, s_y: torch.Tensor, index: torch.Tensor, grad_out: torch.Tensor
) -> torch.Tensor:
    """Σ_n grad_out_n ∂StCE_n/∂z from :func:`stablemax_parts` (``grad_out`` without the class
    dimension); ``inv_b`` is left as it is, so that a retained graph can run backward again."""
    g = grad_out.unsqueeze(-1)
    grad = inv_b.square().mul_(g / total)  # s'(z) = (1 / b)²
    correct = inv_b.gather(-1, index).square_().mul_(g).div_(s_y).neg_()  # -g s'(z_y) / s(z_y)
    return grad.scatter_add_(-1, index, correct)


def stablemax_grad_differentiable(z: torch.Tensor, index: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """The gradient of :func:`stablemax_grad` from differentiable operations on ``z`` (in the dtype
    to compute in) and ``grad_out``: s and s' as the spec's ``torch.where`` branches, so that autograd
    differentiates each branch exactly (s'' = 2 / (1 - z)³ for z < 0, 0 above)."""
    s = stablemax_s(z)
    slope = torch.where(z >= 0, 1.0, (1 - torch.clamp(z, max=0)).reciprocal().square())
    g = grad_out.unsqueeze(-1)
    grad = slope * (g / s.sum(-1, keepdim=True))
    return grad.scatter_add(-1, index, -g * slope.gather(-1, index) / s.gather(-1, index))


class StableMaxNLL(torch.autograd.Function):
    """The StableMax cross-entropy of ``grokking.stablemax_cross_entropy`` as one node: per-target
    losses of :class:`StableMaxCE`, each times its weight (0 for an ignored target), and the
    reduction. ``z``: logits with classes last; ``y``: class indices of shape ``z.shape[:-1]``, an
    ignored target already replaced by a valid class; ``w``: each target's weight, 0 where ignored
    (``None``: 1 for every target); ``denominator``: Σ w for ``"mean"`` (a tensor, or the number of
    targets without ``w``), else ``None``; ``out_dtype``: the result's dtype.

    First order runs the hand-written backward; with ``create_graph=True`` the backward is built from
    differentiable operations on the input (:func:`stablemax_grad_differentiable`), so double backward,
    gradient penalties and Hessian-vector products are exact."""

    EAGER = 1 << 15  # up to this many logits the gradient per unit loss is formed in the forward pass

    @staticmethod
    def forward(ctx, z, y, w, denominator, reduction: str, dtype: torch.dtype, out_dtype: torch.dtype):
        index = y.unsqueeze(-1)
        inv_b, total, s_y = stablemax_parts(z if z.dtype == dtype else z.to(dtype), index)
        losses = (torch.log(total) - torch.log(s_y)).squeeze(-1)
        ctx.eager = ctx.needs_input_grad[0] and z.numel() <= StableMaxNLL.EAGER
        if ctx.eager:  # small inputs: the backward pass is then one product, fewer operator calls in all
            correct = torch.minimum(s_y, s_y.reciprocal()).neg_()  # -s'(z_y) / s(z_y) = -min(s, 1 / s)
            inv_b = inv_b.square_().div_(total).scatter_add_(-1, index, correct)  # ∂loss_n/∂z, in inv_b's memory
        ctx.save_for_backward(z, index, w, inv_b, total, s_y)
        ctx.dtype, ctx.denominator, ctx.reduction = dtype, denominator, reduction
        if reduction == "none":
            out = losses if w is None else losses * w
        else:
            if w is None:
                out = losses.mean() if reduction == "mean" else losses.sum()
                denominator = None  # the mean divided already
            else:
                out = torch.dot(losses, w) if losses.dim() == 1 else (losses * w).sum()
            out = out if denominator is None else out / denominator
        return out if out.dtype == out_dtype else out.to(out_dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        z, index, w, inv_b, total, s_y = ctx.saved_tensors
        g = grad_out if grad_out.dtype == ctx.dtype else grad_out.to(ctx.dtype)
        if ctx.denominator is not None:
            g = g / ctx.denominator
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate again
            g = g.expand(index.shape[:-1]) if w is None else g * w
            grad = stablemax_grad_differentiable(z.to(ctx.dtype), index, g)
        elif ctx.eager:  # inv_b holds ∂loss_n/∂z
            if w is not None:
                g = g * w
            grad = inv_b * (g if g.dim() == 0 else g.unsqueeze(-1))
        else:
            g = g.expand(index.shape[:-1]) if w is None else g * w  # the shape of the targets
            grad = stablemax_grad(inv_b, total, s_y, index, g)
        return grad if grad.dtype == z.dtype else grad.to(z.dtype), None, None, None, None, None, None


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


def build_loss(cfg: LossConfig) -> LossFn:
    """The per-sample loss of ``cfg`` as a function (logits, labels, dtype) -> losses, its option's
    parameters bound; with every one at its default, softmax and StableMax CE use the fused autograd
    versions above (same values)."""
    fn, args = LOSSES[cfg.name].fn, LOSSES.arguments(cfg)
    if all(args[p.name] == p.default for p in LOSSES.params[LOSSES.canonical(cfg.name)]):
        fused = training_loss(cfg.name)
        if fused is not fn:
            return fused
    return partial(fn, **args) if args else fn
