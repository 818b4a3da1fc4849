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
    run up to 27× slower. With a float32 model the logits' gradient is scaled up as a whole by
    2^(40·j) when its largest entry lies 40·j or more binades below 2^log2_scale / N
    (:func:`band_shift`: a fully collapsed batch), one backward pass. With a float64 loss, where
    it has subnormal entries (:func:`banded_backward`), each sample's row is scaled up by its band's 2^(40·q)
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
    if logits.dtype == torch.float32 and loss_dtype == torch.float64 and BANDS["on"]:
        banded_backward(loss, logits, params, log2_scale)
        return
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
    unscale(params, log2_scale, shift[0])


def banded_backward(loss: torch.Tensor, logits: torch.Tensor, params: list[torch.Tensor], log2_scale: int) -> None:
    """:func:`scaled_backward` of a float64 loss on float32 logits, the case whose logits' gradient
    can hold subnormal float32 entries (a float32 loss's cannot: its smallest nonzero probability
    2^-149 times the upstream 2^log2_scale / N is a normal float; docs/speed.md). Where the batch's
    one band (:func:`band_shift`) leaves no entry subnormal, the backward pass is that one band, as
    for other losses. Otherwise it continues from the
    rows of the first band of :func:`row_shifts`, and the other bands' rows are backpropagated
    after it from the retained graph; the bands' sums are added in float64."""
    seen: dict = {}

    def hook(g: torch.Tensor) -> torch.Tensor | None:
        shift = band_shift(g, log2_scale)  # entries below 2^-126 - shift stay subnormal at 2^shift
        if shift >= 24 or not ((g != 0) & (g.abs() < torch.finfo(g.dtype).tiny * 2.0**-shift)).any():
            seen["shift"] = shift
            return g * 2.0**shift if shift else None
        shifts = row_shifts(g, log2_scale)
        seen.update(grad=g, shifts=shifts, bands=[b for b in shifts.unique().tolist() if b])
        return rows_at(g, shifts, seen["bands"][0])

    logits.register_hook(hook)
    loss.backward(torch.full_like(loss, 2.0**log2_scale), retain_graph=True)
    if "bands" not in seen:
        unscale(params, log2_scale, seen.get("shift", 0))
        return
    grad, shifts, bands = seen["grad"], seen["shifts"], seen["bands"]
    firsts = [p.grad for p in params]
    for p in params:
        p.grad = None
    totals: list[torch.Tensor | None] = [None] * len(params)
    for k, band in enumerate(bands):
        for shift in (band, 0):  # a band whose scaled pass overflows float32: at the backward scale
            if k == 0 and shift == band:
                grads = firsts  # the first band went through the backward pass above
            else:
                grads = torch.autograd.grad(
                    logits, params, rows_at(grad, shifts, band, shift), retain_graph=True, allow_unused=True
                )
            if all(g is None or torch.isfinite(g).all() for g in grads):
                break
        for i, g in enumerate(grads):
            if g is not None:
                part = g.double().mul_(2.0 ** -(log2_scale + shift))
                totals[i] = part if totals[i] is None else totals[i].add_(part)
    for p, total in zip(params, totals, strict=True):
        if total is not None:
            p.grad = total.to(p.dtype)


def rows_at(grad: torch.Tensor, shifts: torch.Tensor, band: int, shift: int | None = None) -> torch.Tensor:
    """The rows of ``grad`` whose band is ``band``, scaled by 2^shift (default: the band's own), others zero."""
    shift = band if shift is None else shift
    scaled = (grad.double() * 2.0**shift).to(grad.dtype)  # exact; 2^shift itself may exceed float32's range
    return torch.where((shifts == band).unsqueeze(-1), scaled, torch.zeros_like(grad))


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


def unscale(params: list[torch.Tensor], log2_scale: int, shift: int) -> None:
    """Undo a backward pass at 2^log2_scale whose logits' gradient was scaled up by 2^shift more."""
    if shift:
        unscale_exactly(params, log2_scale + shift)
    else:
        unscale_grads(params, log2_scale)


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
