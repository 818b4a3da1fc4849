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

    After Softmax Collapse every sample's logit gradients can lie far below the scale's upstream
    gradient 2^log2_scale / N, and some in float32's subnormal range, where the backward matmuls
    run up to 27× slower. Where the largest of them (over the whole batch) lies 40 or more binades
    below it, the logits' gradient is scaled up by 2^(40·j), j as large as keeps that largest entry
    at or below 2^log2_scale / N, and the parameters' gradients are unscaled by that too, in one
    rounding (:func:`band_shift`). Power-of-two scalings are exact: this changes nothing unless
    some value of the backward pass would have been subnormal, and then only that it is computed
    at full precision instead of rounded to a multiple of 2^-149.
    """
    if log2_scale == 0:
        loss.backward()
        return
    scale = 2.0**log2_scale
    shift = [0]

    def band(g: torch.Tensor) -> torch.Tensor | None:
        shift[0] = band_shift(g, log2_scale)
        return g * 2.0 ** shift[0] if shift[0] else None

    if loss_dtype == torch.float16:
        logits.register_hook(lambda g: g * scale)
        if logits.dtype == torch.float32:
            logits.register_hook(band)
        loss.backward()
    else:
        if logits.dtype == torch.float32:
            logits.register_hook(band)
        loss.backward(torch.full_like(loss, scale))
    if shift[0]:
        unscale_exactly(params, log2_scale + shift[0])
    else:
        unscale_grads(params, log2_scale)


def band_shift(grad: torch.Tensor, log2_scale: int) -> int:
    """The exponent 40·j by which the logits' gradient ``grad`` (N samples, at scale 2^log2_scale)
    is scaled up: 0 unless its largest magnitude lies 40 or more binades below 2^log2_scale / N."""
    if not BANDS["on"]:
        return 0
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
