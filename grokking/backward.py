"""Backpropagation at a power-of-two scale, so that tiny gradients stay out of the subnormal range.

Late in training, the gradient of the logits holds many subnormal float32 values (the probabilities of
wrong classes, e^-90 and below, divided by N). CPU matrix multiplies with subnormal operands run up to
an order of magnitude slower (every such operand takes a microcode assist): a transformer epoch went
from 32 to 54 ms between epochs 50 and 300. Flushing subnormals to zero would change the small
values this paper studies, so instead the backward pass runs at scale 2^k and the parameter gradients
are scaled by 2^-k after it. A power of two scales every float exactly, so the
gradients are the same; the only difference is that intermediate products which would have been
subnormal (and rounded to fewer significant bits) are now computed at full precision. The risk is
overflow for gradients above float32's max / 2^k (2^88 ≈ 3e26 at k = 40), far beyond any run that
has not diverged already.
"""

from __future__ import annotations

import math

import torch

BAND = 40  # binades: the logits' gradient is scaled up in steps of 2^40 (grokking/native/common.h)
BANDS = {"on": True}  # off: never scaled up (the arithmetic before; a switch for tests and benchmarks)


def scaled_backward(
    loss: torch.Tensor, logits: torch.Tensor, params: list[torch.Tensor], log2_scale: int, loss_dtype: torch.dtype
) -> None:
    """``loss.backward()`` at scale 2^log2_scale, every parameter gradient scaled back after it.

    The scale enters as the upstream gradient of ``loss`` (no extra pass), except when the loss is
    computed in float16, whose range (max 65504) cannot hold it: then it enters at the logits, in
    the model's dtype. ``log2_scale = 0`` is a plain backward pass.

    After Softmax Collapse a sample's logit gradients can lie far below the scale's upstream
    gradient 2^log2_scale / N, and some in float32's subnormal range, where the backward matmuls
    run up to 27× slower. With a float32 model, where the logits' gradient has no subnormal entry,
    it is scaled up as a whole by 2^(40·j) when its largest entry lies 40·j or more binades below
    2^log2_scale / N (:func:`band_shift`: a fully collapsed batch), one backward pass as before.
    Where it has subnormal entries, each sample's row is scaled up by its band's 2^(40·q)
    (:func:`row_shifts`, the bands of the C++ step, ``docs/speed.md``), which makes every nonzero
    entry a normal float, and the model's backward runs once per band on that band's rows (mixed
    states: once per band present). The bands' parameter gradients are unscaled and added in
    float64, one rounding; a band whose scaled pass overflows float32 runs at the backward scale.
    Power-of-two scalings are exact: this changes nothing unless some value of the backward pass
    would have been subnormal, and then only that it is computed at full precision instead of
    rounded to a multiple of 2^-149.
    """
    if log2_scale == 0:
        loss.backward()
        return
    scale = 2.0**log2_scale
    if logits.dtype != torch.float32 or not BANDS["on"]:  # one scale for the whole batch
        if loss_dtype == torch.float16:
            logits.register_hook(lambda g: g * scale)
            loss.backward()
        else:
            loss.backward(torch.full_like(loss, scale))
        unscale_grads(params, log2_scale)
        return
    if loss_dtype == torch.float16:
        (grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
        grad = grad * scale
    else:
        (grad,) = torch.autograd.grad(loss, logits, torch.full_like(loss, scale), retain_graph=True)
    tiny = torch.finfo(grad.dtype).tiny
    if not ((grad != 0) & (grad.abs() < tiny)).any():  # no subnormal entry: one band for the batch
        shift = band_shift(grad, log2_scale)
        logits.backward(grad * 2.0**shift if shift else grad)
        if shift:
            unscale_exactly(params, log2_scale + shift)
        else:
            unscale_grads(params, log2_scale)
        return
    shifts = row_shifts(grad, log2_scale)
    bands = [b for b in shifts.unique().tolist() if b]  # 0: rows whose gradient is zero, which add nothing
    totals: list[torch.Tensor | None] = [None] * len(params)
    for band in bands:
        rows = (shifts == band).unsqueeze(-1)
        for shift in (band, 0):  # a band whose scaled pass overflows float32: at the backward scale
            band_grad = torch.where(rows, grad * 2.0**shift, torch.zeros_like(grad))
            grads = torch.autograd.grad(logits, params, band_grad, retain_graph=True, allow_unused=True)
            if all(g is None or torch.isfinite(g).all() for g in grads):
                break
        for i, g in enumerate(grads):
            if g is not None:
                part = g.double().mul_(2.0 ** -(log2_scale + shift))
                totals[i] = part if totals[i] is None else totals[i].add_(part)
    for p, total in zip(params, totals, strict=True):
        if total is not None:
            total = total.to(p.dtype)
            p.grad = total if p.grad is None else p.grad + total


def row_shifts(grad: torch.Tensor, log2_scale: int) -> torch.Tensor:
    """Per sample (every dimension but the last), the exponent 40·q by which its row of the
    logits' gradient ``grad`` (N samples, at scale 2^log2_scale) is scaled up, as in the C++ step:
    q = 1 for rows whose largest magnitude lies within 40 binades below 2 · 2^log2_scale / N, 2 for
    the next 40, and so on; 0 for rows of zeros. A shift of at least 40 makes every nonzero entry of
    a row a normal float32, however far below its largest entry it lies."""
    largest = grad.abs().amax(-1).double()
    top = log2_scale + 1 - math.log2(grad.shape[-2])
    below = (top - torch.log2(largest)).clamp_min(0)
    shift = BAND * (1 + torch.div(below, BAND, rounding_mode="floor"))
    return torch.where(largest > 0, shift, torch.zeros_like(shift)).long()


def band_shift(grad: torch.Tensor, log2_scale: int) -> int:
    """The exponent 40·j by which the whole of the logits' gradient ``grad`` (N samples, at scale
    2^log2_scale, no subnormal entry) is scaled up: 0 unless its largest magnitude lies 40 or more
    binades below 2^log2_scale / N (a fully collapsed batch, whose products would turn subnormal)."""
    largest = grad.abs().amax().item()
    if not 0 < largest < math.inf:
        return 0
    below = log2_scale - math.log2(grad.shape[-2]) - math.floor(math.log2(largest))
    return BAND * int(below // BAND) if below >= BAND else 0


def unscale_exactly(params: list[torch.Tensor], log2_scale: int) -> None:
    """Multiply every parameter gradient by 2^-log2_scale in one rounding (through float64: the
    factor may lie below float32's range)."""
    for p in params:
        if p.grad is not None:
            p.grad.copy_(p.grad.double().mul_(2.0**-log2_scale))


def unscale_grads(params: list[torch.Tensor], log2_scale: int) -> None:
    """Divide every parameter gradient by 2^log2_scale (exact), after a backward pass at that scale."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads and log2_scale:
        torch._foreach_mul_(grads, 2.0**-log2_scale)
