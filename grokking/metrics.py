"""Measurements of the paper's mechanism, per replica.

Every function returns one value per replica (a tensor of shape ``(R,)``); logits have shape
``(R, N, C)`` and parameters/gradients ``(R, ...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from grokking.losses import DTYPES, LossFn, pick
from grokking.optim import per_replica_norm
from grokking.registry import Registry

SC_DTYPES = ("float16", "float32", "float64", "bfloat16")


def correct_counts(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correctly classified samples (an integer count, not a float mean)."""
    return (logits.argmax(-1) == y).sum(-1)


def softmax_collapse(logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask of the rows in Softmax Collapse in ``dtype``: Σ_k exp(z_k - max z) == 1, summed
    by ``torch.sum`` as the official code's logger sums it. The loss sums the same terms more
    accurately (:func:`grokking.losses.exp_total`) and is exactly 0 on a subset of these rows, nearly
    all of them when the wrong-class logits are equal (``zero_loss_fraction`` counts that subset)."""
    z = logits.detach().to(dtype)
    return torch.exp(z - z.amax(-1, keepdim=True)).sum(-1) == 1


def diagnostic_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A floating-point torch dtype, or its name (one of :data:`SC_DTYPES`); anything else is refused
    with one line naming the choices."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not valid; choose one of: {', '.join(SC_DTYPES)} (or a torch dtype)")
        return DTYPES[dtype]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype={dtype!r} is not a floating-point dtype; choose one of: {', '.join(SC_DTYPES)}")
    return dtype


def classes_last(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """``logits`` with the class dimension ``dim`` moved last: the loss's layout, ``(N, C)`` or
    ``(N, C, d1, ...)`` with ``dim=1``; a 1-D tensor is one unbatched row."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor, got {kind}")
    if logits.numel() == 0:
        raise ValueError(f"logits of shape {tuple(logits.shape)} are empty: there is no row to measure")
    if logits.dim() == 1:
        return logits
    if not -logits.dim() <= dim < logits.dim():
        raise ValueError(f"dim={dim} is not a dimension of logits of shape {tuple(logits.shape)}")
    return logits.movedim(dim, -1)


def softmax_collapse_fraction(logits: torch.Tensor, dtype: torch.dtype | str, dim: int = 1) -> torch.Tensor:
    """Share of the rows of ``logits`` in Softmax Collapse in ``dtype`` (a floating-point torch dtype
    or its name: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``), as a 0-dim float64
    tensor: the rows whose softmax in that dtype is exactly one-hot by the rule of
    :func:`softmax_collapse`, the official code logger's; the cross-entropy and its gradient through
    the correct class vanish on a subset of them.

    ``logits``: the layout of ``F.cross_entropy`` and ``stablemax_cross_entropy``, classes in ``dim``
    (1): ``(N, C)``, ``(N, C, d1, ...)`` (each of the N·d1·... positions is a row) or an unbatched
    ``(C,)``; ``dim=-1`` for classes last. Training logs it per replica (``sc_fraction_<dtype>``)."""
    dtype = diagnostic_dtype(dtype)
    return softmax_collapse(classes_last(logits, dim), dtype).double().mean()


def nlm_alignment(params) -> dict[str, float]:
    """NLM alignment cos(θ, -∇θL) of each parameter tensor, from its ``.grad``: 1 when the gradient
    step only scales the weights up (naïve loss minimization). ``params``: ``model.named_parameters()``
    (keys are the names) or ``model.parameters()`` (keys "0", "1", ...); tensors without ``.grad``
    are left out, and so are empty tensors. A single tensor is refused (``TypeError``): pass an
    iterable of them. Training logs the same cosine per tensor and replica (``nlm_cos/<tensor>``)."""
    if isinstance(params, torch.Tensor):
        raise TypeError(
            "params must be an iterable of parameters (model.parameters() or model.named_parameters()), not one tensor"
        )
    out = {}
    for i, item in enumerate(params):
        name, p = item if isinstance(item, tuple) else (str(i), item)
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params item {name!r} is a {type(p).__name__}, not a tensor")
        if p.grad is not None and p.numel() > 0:
            out[name] = cosine(p.detach().reshape(1, -1), -p.grad.reshape(1, -1)).item()
    return out


def logit_stats(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean L2 norm of the logit vectors, mean max logit, mean margin z_y - max_{k≠y} z_k."""
    z = logits.detach()
    z_y = pick(z, y)
    others = z.scatter(-1, y.expand(z.shape[:-1]).unsqueeze(-1), float("-inf"))
    return {
        "logit_norm": z.norm(dim=-1).mean(-1),
        "logit_max": z.amax(-1).mean(-1),
        "logit_margin": (z_y - others.amax(-1)).mean(-1),
    }


def flat(t: torch.Tensor) -> torch.Tensor:
    return t.detach().flatten(1).double()


def unit(t: torch.Tensor) -> torch.Tensor:
    """Each replica's vector divided by its norm (zero vectors stay zero); the scaled norm keeps
    tiny float64 gradients (≈ 1e-170 after Softmax Collapse) from squaring to zero."""
    t = flat(t)
    norm = per_replica_norm([t])
    return t / torch.where(norm > 0, norm, 1.0).view(-1, 1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity per replica (0 where either vector is zero)."""
    return (unit(a) * unit(b)).sum(1)


def parameter_diagnostics(
    names: list[str], params: list[torch.Tensor], grads: list[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """NLM alignment cos(θ, -∇L), weight norms, gradient norm and share of exactly-zero gradients."""
    out: dict[str, torch.Tensor] = {}
    theta = torch.cat([flat(p) for p in params], 1)
    grad = torch.cat([flat(g) for g in grads], 1)
    out["nlm_cos"] = cosine(theta, -grad)
    out["weight_norm"] = per_replica_norm([theta])
    out["grad_norm"] = per_replica_norm([grad])
    out["zero_grad_fraction"] = (grad == 0).double().mean(1)
    for name, p, g in zip(names, params, grads):
        out[f"nlm_cos/{name}"] = cosine(p, -g)
    for name, p in zip(names, params):
        out[f"weight_norm/{name}"] = per_replica_norm([flat(p)])
    return out


def absorbed_fraction(before: list[torch.Tensor], after: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """Share of parameter entries that the step left unchanged although their gradient was nonzero."""
    absorbed = torch.cat([((b == a) & (g != 0)).flatten(1) for b, a, g in zip(before, after, grads)], 1)
    return absorbed.double().mean(1)


def output_diagnostics(
    logits: torch.Tensor, y: torch.Tensor, per_sample_loss: torch.Tensor, loss_dtype: str
) -> dict[str, torch.Tensor]:
    """SC fraction in the run's loss dtype and in every float dtype, zero-loss share, logit stats."""
    out = {"sc_fraction": softmax_collapse(logits, DTYPES[loss_dtype]).double().mean(-1)}
    for name in SC_DTYPES:
        out[f"sc_fraction_{name}"] = softmax_collapse(logits, DTYPES[name]).double().mean(-1)
    out["zero_loss_fraction"] = (per_sample_loss.detach() == 0).double().mean(-1)
    out.update(logit_stats(logits, y))
    return out


@dataclass(frozen=True)
class LoggedStep:
    """What a logged epoch offers its metric columns: the training logits ``(R, N, C)`` and
    per-sample losses ``(R, N)`` of this step, the test logits, the labels, the loss (and its dtype
    name), each parameter tensor with its gradient, and a copy of each parameter taken before the
    optimizer steps (``before``). ``params`` are the live tensors: a column measured after the
    update (``after_update=True``) reads the updated values there."""

    logits: torch.Tensor
    per_sample: torch.Tensor
    train_y: torch.Tensor
    test_logits: torch.Tensor
    test_y: torch.Tensor
    loss_fn: LossFn
    loss_dtype: str
    names: list[str]
    params: list[torch.Tensor]
    grads: list[torch.Tensor]
    before: list[torch.Tensor]


@dataclass(frozen=True)
class ColumnEntry:
    """Metric columns of ``metrics.csv``: ``fn(step)`` returns one ``(R,)`` tensor (the column takes
    the registered name) or a dict of named ``(R,)`` tensors (several columns). A column registered
    with ``after_update=True`` is measured once the optimizer has stepped (it compares
    ``step.before`` with ``step.params``); the others before the update."""

    fn: Callable[[LoggedStep], torch.Tensor | dict[str, torch.Tensor]]
    after_update: bool = False


COLUMNS: Registry[ColumnEntry] = Registry("metrics column", ColumnEntry)


def logged_columns(step: LoggedStep, after_update: bool = False) -> dict[str, torch.Tensor]:
    """The registered columns of a logged epoch measured before the optimizer step (or, with
    ``after_update``, after it), in registration order. The CSV's column order: those before the
    update, then those after it."""
    out: dict[str, torch.Tensor] = {}
    for name, entry in COLUMNS.entries.items():
        if entry.after_update == after_update:
            value = entry.fn(step)
            out.update(value if isinstance(value, dict) else {name: value})
    return out


@COLUMNS.register("losses")
def losses(step: LoggedStep) -> dict[str, torch.Tensor]:
    return {
        "train_loss": step.per_sample.detach().mean(-1),
        "test_loss": step.loss_fn(step.test_logits, step.test_y, DTYPES[step.loss_dtype]).mean(-1),
    }


@COLUMNS.register("accuracies")
def accuracies(step: LoggedStep) -> dict[str, torch.Tensor]:
    return {
        "train_acc": correct_counts(step.logits, step.train_y).double() / step.train_y.shape[-1],
        "test_acc": correct_counts(step.test_logits, step.test_y).double() / step.test_y.shape[-1],
    }


COLUMNS.register("outputs", lambda s: output_diagnostics(s.logits, s.train_y, s.per_sample, s.loss_dtype))
COLUMNS.register("parameters", lambda s: parameter_diagnostics(s.names, s.params, s.grads))
COLUMNS.register("absorbed_fraction", lambda s: absorbed_fraction(s.before, s.params, s.grads), after_update=True)
