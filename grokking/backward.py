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

import torch


def scaled_backward(
    loss: torch.Tensor, logits: torch.Tensor, params: list[torch.Tensor], log2_scale: int, loss_dtype: torch.dtype
) -> None:
    """``loss.backward()`` at scale 2^log2_scale, every parameter gradient scaled back after it.

    The scale enters as the upstream gradient of ``loss`` (no extra pass), except when the loss is
    computed in float16, whose range (max 65504) cannot hold it: then it enters at the logits, in
    the model's dtype. ``log2_scale = 0`` is a plain backward pass.
    """
    if log2_scale == 0:
        loss.backward()
        return
    scale = 2.0**log2_scale
    if loss_dtype == torch.float16:
        logits.register_hook(lambda g: g * scale)
        loss.backward()
    else:
        loss.backward(torch.full_like(loss, scale))
    unscale_grads(params, log2_scale)


def unscale_grads(params: list[torch.Tensor], log2_scale: int) -> None:
    """Divide every parameter gradient by 2^log2_scale (exact), after a backward pass at that scale."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads and log2_scale:
        torch._foreach_mul_(grads, 2.0**-log2_scale)
