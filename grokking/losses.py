"""Per-sample losses, each computed explicitly in the dtype the experiment names.

All functions take logits ``z`` of shape ``(..., C)`` and integer labels ``y`` broadcastable to
``z.shape[:-1]``, cast the logits to ``dtype`` first and return per-sample losses in ``dtype``.
These are the definitions (the spec); training builds its loss with :func:`grokking.fused.build_loss`,
which uses the fused autograd nodes where they apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from grokking.registry import Param, Registry

DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

REDUCED = (torch.float16, torch.bfloat16)  # the softmax CE is torch's log_softmax in these dtypes

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.dtype], torch.Tensor]


@dataclass(frozen=True)
class LossEntry:
    """A loss option: ``fn(logits, labels, dtype, **params)`` returns the per-sample losses in
    ``dtype``; it receives the option's own parameters (``params=`` of its registration) as keywords."""

    fn: LossFn


# read by every loss: applied to the logits / the objective around the loss itself
TEMPERATURE = Param(
    "temperature", float, 1.0, "logits are divided by this before the loss and every diagnostic", 1e-3, 1e3
)  # beyond this range, logits / T overflow or every logit rounds to 0
LOGIT_NORM_PENALTY = Param(
    "logit_norm_penalty", float, 0.0, "adds this × mean squared L2 norm of the logits to the objective", low=0
)
LOSSES: Registry[LossEntry] = Registry("loss.name", LossEntry, shared=(TEMPERATURE, LOGIT_NORM_PENALTY))


def pick(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The correct-class entry z_y of every row."""
    return z.gather(-1, y.expand(z.shape[:-1]).unsqueeze(-1)).squeeze(-1)


def exp_total(e: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Σ_k e_k along the last dim, e = exp(z - max z), with the largest term (index ``top``, shape
    ``(..., 1)``; it is exp(0) = 1) added last, to the sum of the others.

    Near Softmax Collapse every other term is below the rounding step of 1: added to a partial sum
    that already holds the 1, each would round away on its own, while their sum need not. Summed
    first, they round to 1 only where the exact sum does. torch's ``sum`` and its CPU ``log_softmax``
    kernel add the terms in vector lanes, and the terms in the lane of the 1 are lost: they round to
    1 on more rows (docs/official.md, "Where our arithmetic differs"). Differentiable; ``e`` is not
    modified.
    """
    largest = e.gather(-1, top)
    return (e.scatter(-1, top, 0).sum(-1, keepdim=True) + largest).squeeze(-1)


@LOSSES.register(
    "softmax",
    params=(
        Param("label_smoothing", float, 0.0, "weight of the uniform target", 0, 1, high_open=True),
        Param(
            "sum",
            str,
            "exact",
            "how Σ exp is added in float32/64: exact (largest term last) | torch (torch's log_softmax)",
            choices=("exact", "torch"),
        ),
    ),
)
def softmax_cross_entropy(
    z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, label_smoothing: float = 0.0, sum: str = "exact"
) -> torch.Tensor:
    """SCE = log Σ_k exp(z_k - max z) - (z_y - max z), every operation in ``dtype``; in float16 and
    bfloat16, torch's ``log_softmax`` in that dtype.

    The loss is exactly 0 when, and only when, Σ_k exp(z_k - max z) rounds to 1 with z_y the
    largest logit (Softmax Collapse); so is the gradient through the correct-class logit. The sum is
    :func:`exp_total`'s (the small terms first, the largest last), so it rounds to 1 only where the
    exact sum does. The shift is subtracted from z_y before the log-sum is added, in the order of
    torch's ``log_softmax``: adding the log-sum to max z first would round a small log-sum away
    against a large max z and give rows outside the collapse a zero loss. With label smoothing ε the
    target is (1 - ε)·onehot(y) + ε·uniform.

    torch's ``log_softmax`` for float16 and bfloat16 works in float32 inside and rounds to the dtype
    once, its sum and its backward pass included; the official code and the paper's runs computed
    their float16 loss that way. Done op by op in the dtype, the gradient through the correct class
    came out coarser near collapse (g / Σ - g cancels at the precision of g), and Fig. 2's 40 %
    float16 run parted from the official code's (docs/official.md, "Where our arithmetic differs").
    In these dtypes the loss and that gradient are exactly 0 on the same rows: those the SC flag
    marks, but for about 1 in 2 000 next to the boundary, where the flag's sum rounds otherwise.

    ``sum="torch"`` computes float32 and float64 through torch's ``log_softmax`` too, as the
    official code and the paper's runs did: its CPU kernel adds the terms in vector lanes, so near
    collapse the terms in the lane of the 1 round away and more rows keep a nonzero loss than the
    exact sum gives (Fig. 2's SC onsets at 40 % depend on it: docs/deviations.md).
    """
    z = z.to(dtype)
    if dtype in REDUCED or sum == "torch":
        log_p = torch.log_softmax(z, -1)
        loss = -pick(log_p, y)
        return (1 - label_smoothing) * loss - label_smoothing * log_p.mean(-1) if label_smoothing else loss
    m, top = z.detach().max(-1, keepdim=True)
    log_total = torch.log(exp_total(torch.exp(z - m), top))
    loss = log_total - (pick(z, y) - m.squeeze(-1))
    if label_smoothing:
        smooth = log_total - (z.mean(-1) - m.squeeze(-1))
        loss = (1 - label_smoothing) * loss + label_smoothing * smooth
    return loss


def zero_correct_class_grad(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient hook on the logits for the SC intervention: nothing flows through z_y."""
    return grad.scatter(-1, y.expand(grad.shape[:-1]).unsqueeze(-1), 0.0)


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x ≥ 0 and 1 / (1 - x) for x < 0 (both branches finite everywhere)."""
    return torch.where(x >= 0, x + 1, 1 / (1 - torch.clamp(x, max=0)))


def stablemax(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """StableMax(x)_i = s(x_i) / Σ_k s(x_k) along ``dim``: a softmax with s in place of exp."""
    s = stablemax_s(input)
    return s / s.sum(dim, keepdim=True)


@LOSSES.register("stablemax")
def stablemax_cross_entropy(z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """StCE = -log StableMax(z)_y = log Σ_k s(z_k) - log s(z_y), in ``dtype``."""
    s = stablemax_s(z.to(dtype))
    return torch.log(s.sum(-1)) - torch.log(pick(s, y))


def taylor(x: torch.Tensor) -> torch.Tensor:
    """Second-order Taylor polynomial of exp, 1 + x + x²/2 (positive for every x)."""
    return 1 + x + x * x / 2


@LOSSES.register("taylor")
def taylor_cross_entropy(z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cross-entropy of the softmax with exp replaced by its Taylor polynomial, in ``dtype``."""
    t = taylor(z.to(dtype))
    return torch.log(t.sum(-1)) - torch.log(pick(t, y))


@LOSSES.register("mse")
def mse(z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Squared distance between the logits and the one-hot target, summed over classes."""
    z = z.to(dtype)
    target = torch.nn.functional.one_hot(y, z.shape[-1]).to(dtype)
    return ((z - target) ** 2).sum(-1)


@LOSSES.register("zloss", params=(Param("z_coef", float, 1e-4, "weight of (log Σ exp z)² in the loss", low=0),))
def z_loss(z: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, z_coef: float = 1e-4) -> torch.Tensor:
    """Softmax cross-entropy plus ``z_coef`` × (log Σ_k exp z_k)², in ``dtype`` (PaLM; Wortsman et al.
    2023): the extra term pulls the log-normalizer towards 0, so the logits cannot all drift upwards."""
    z = z.to(dtype)
    return softmax_cross_entropy(z, y, dtype) + z_coef * torch.logsumexp(z, -1).square()
