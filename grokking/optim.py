"""Optimizers: AdamW, SGD, and ⊥Grad (or gradient-norm normalization) around either.

⊥Grad replaces each parameter tensor's gradient g by its component orthogonal to the weights,
g⊥ = g - (θ·g / θ·θ) θ, rescaled to the norm of g, and then lets the base optimizer step. The
projection is taken per parameter tensor, and in training per replica (dimension 0 of every
parameter). :class:`OrthoGrad` is a ``torch.optim.Optimizer`` of its own, exported as
``grokking.OrthoGrad``: its ``state_dict`` holds the base optimizer's state (Adam's moments) and
every group's hyperparameters, and it loads the ``state_dict`` of the base optimizer alone too.

Beyond the paper, two interventions of the grokking literature: :class:`Grokfast` (Lee et al. 2024),
a low-pass filter that amplifies the slow part of the gradient before any base optimizer (⊥Grad
included) steps, exported as ``grokking.Grokfast``; and :func:`constrain_norm` (Omnigrok, Liu,
Michaud & Tegmark 2023), a post-step hook that keeps the parameters' total L2 norm at a fixed
multiple of its initial value.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from grokking.errors import ConfigError
from grokking.registry import Param, Registry

if TYPE_CHECKING:
    from grokking.config import OptimizerConfig  # generated from the parameters below


def per_replica_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ a·b over every dimension but the first, shaped to broadcast against ``a``."""
    return (a * b).flatten(1).sum(1).view(-1, *[1] * (a.dim() - 1))


def safe_scale(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Per replica, the largest |entry| over all tensors (1 where they are all zero), shape (R,).
    Dividing by it before squaring keeps tiny gradients (after Softmax Collapse entries of 1e-170 are
    common in float64) from squaring to zero."""
    m = torch.stack([t.flatten(1).abs().amax(1) for t in tensors]).amax(0)
    return torch.where(m > 0, m, 1.0)


def per_replica_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all tensors together, one value per replica, shape (R,), computed as
    m·sqrt(Σ (t/m)²) with m = :func:`safe_scale` so that it does not underflow."""
    m = safe_scale(tensors)
    return m * torch.stack([(t.flatten(1) / m.view(-1, 1)).pow(2).sum(1) for t in tensors]).sum(0).sqrt()


PARALLEL = ("rescale", "zero")  # what ⊥Grad does with a gradient parallel to θ (see orthogonal_component)


def parallel_tolerance(g: torch.Tensor) -> float:
    """|g⊥| / |g| at or below which g counts as parallel to θ for ``parallel="zero"``: the rounding
    error of the projection, 16·log2(2n)·ε for n entries per replica in g's dtype."""
    n = max(g[0].numel(), 1)
    return 16 * math.log2(2 * n) * torch.finfo(g.dtype).eps


def orthogonal_component(
    theta: torch.Tensor, g: torch.Tensor, rescale: bool = True, parallel: str = "rescale"
) -> torch.Tensor:
    """g⊥ = g - (θ·g / θ·θ) θ per replica; with ``rescale`` it takes the norm of g.

    The rescaled version works on ĝ = g / :func:`safe_scale` (per replica): g⊥ is linear in g and the
    factor |g| / |g⊥| does not depend on g's scale, so the result is the same, and no square of a
    tiny gradient underflows to zero.

    A gradient parallel to θ has g⊥ = 0 up to rounding. With ``parallel="rescale"`` (the paper's
    and the released code's behaviour) that rounding residue is rescaled to the norm of g like any
    other g⊥: a full-size step in a direction set by rounding, not orthogonal to θ (only an exactly
    zero g⊥ stays 0). With ``parallel="zero"`` a g⊥ within the rounding error of the projection
    (:func:`parallel_tolerance`) becomes an exact 0: no step for that replica.
    """
    shape = (-1, *[1] * (g.dim() - 1))
    tiny = torch.finfo(g.dtype).tiny
    theta_sq = per_replica_dot(theta, theta)
    if not rescale:
        coef = torch.where(theta_sq > 0, per_replica_dot(theta, g) / theta_sq.clamp_min(tiny), 0)
        perp = g - coef * theta
        if parallel == "zero":
            m = safe_scale([g]).view(shape)  # compare the squares of g / m: no underflow
            perp_sq, g_sq = per_replica_dot(perp / m, perp / m), per_replica_dot(g / m, g / m)
            perp = perp.masked_fill(perp_sq <= parallel_tolerance(g) ** 2 * g_sq, 0)
        return perp
    m = safe_scale([g]).view(shape)
    g_hat = g / m
    coef = torch.where(theta_sq > 0, per_replica_dot(theta, g_hat) / theta_sq.clamp_min(tiny), 0)
    perp = torch.addcmul(g_hat, coef, theta, value=-1)
    perp_sq = per_replica_dot(perp, perp)
    g_sq = per_replica_dot(g_hat, g_hat)
    factor = torch.where(perp_sq > 0, (g_sq / perp_sq.clamp_min(tiny)).sqrt(), 1.0)
    if parallel == "zero":
        factor = factor.masked_fill(perp_sq <= parallel_tolerance(g) ** 2 * g_sq, 0)
    return perp.mul_(factor * m)  # an exactly-zero g⊥ (g parallel to θ, or g = 0) is not rescaled


def project(
    theta: torch.Tensor, g: torch.Tensor, rescale: bool, per_replica: bool, parallel: str = "rescale"
) -> torch.Tensor:
    """:func:`orthogonal_component` of the whole tensor, or of each slice along dimension 0 with
    ``per_replica``."""
    if per_replica:
        return orthogonal_component(theta, g, rescale, parallel)
    return orthogonal_component(theta.reshape(1, -1), g.reshape(1, -1), rescale, parallel).view_as(g)


class GradientWrapper(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` that transforms the gradients in ``.grad`` and then lets a base
    optimizer step with them. Both share their ``param_groups`` (the same dicts: an LR scheduler or
    ``add_param_group`` reaches the base) and their ``state``, so ``state_dict`` holds the base's
    state (Adam's moments) and each group's hyperparameters, the wrapper's own among them."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base: Callable[..., torch.optim.Optimizer] | torch.optim.Optimizer,
        own: dict[str, Any],
        base_kwargs: dict[str, Any],
    ):
        if isinstance(base, torch.optim.Optimizer):  # an instance: adopt its groups and state
            params, base = adopt(base, list(params), own, base_kwargs)
        elif not callable(base):
            raise TypeError(f"base={base!r} is not an optimizer class, factory or instance (e.g. torch.optim.AdamW)")
        super().__init__(params, own)  # every group gets the wrapper's keys (a group's own value wins)
        self.base = base(self.param_groups, **base_kwargs)  # fills the base's keys into the same dicts
        self.share()
        self.defaults = {**self.base.defaults, **own}  # LR schedulers look up "betas"/"momentum" here

    def share(self) -> None:
        self.param_groups = self.base.param_groups
        self.state = self.base.state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "base"):  # while torch's __init__ builds the first groups
            return super().add_param_group(param_group)
        for key, value in self.defaults.items():
            param_group.setdefault(key, value)
        self.base.add_param_group(param_group)  # appends to the shared list

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The base's ``load_state_dict``; a key that the saved groups lack (a state saved by the
        base optimizer alone) keeps this optimizer's current value."""
        current = [{k: v for k, v in group.items() if k != "params"} for group in self.param_groups]
        self.base.load_state_dict(state_dict)
        self.share()
        for group, own in zip(self.param_groups, current):
            for key, value in own.items():
                group.setdefault(key, value)

    def __getstate__(self) -> dict[str, Any]:  # copy.deepcopy and pickle keep the base
        return {**super().__getstate__(), "base": self.base}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.share()

    def transform_(self) -> None:
        raise NotImplementedError

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self.transform_()
        self.base.step()
        return loss


class OrthoGrad(GradientWrapper):
    """⊥Grad: each parameter's gradient g is replaced by its component orthogonal to the parameter,
    g⊥ = g - (θ·g / θ·θ) θ, rescaled to the norm of g (``rescale``), before ``base`` steps.

    ``base`` is an optimizer class (or a factory taking param groups and keywords), built with every
    keyword in ``base_kwargs`` (lr, betas, eps, weight_decay, momentum, ...), or an optimizer
    instance over the same parameters, which is then used as it is (its groups, hyperparameters and
    state). Parameter groups may set any hyperparameter, ``rescale``, ``per_replica`` and
    ``parallel`` included, per group. With ``per_replica`` (a group key too), dimension 0 of every
    parameter indexes independent models (seeds trained as one batched model), and each slice is
    projected on its own. ``parallel``: what a gradient parallel to θ becomes (``"rescale"``, the
    paper's, or ``"zero"``; :func:`orthogonal_component`). ``step(closure)`` hands the base a closure
    that projects the gradients it computes, so closure-driven bases (LBFGS) see projected gradients
    at every evaluation.

        opt = OrthoGrad(model.parameters(), base=torch.optim.AdamW, lr=1e-3, weight_decay=0.0)
    """

    OWN = ("rescale", "per_replica", "parallel")

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base: Callable[..., torch.optim.Optimizer] | torch.optim.Optimizer = torch.optim.AdamW,
        rescale: bool = True,
        *,
        per_replica: bool = False,
        parallel: str = "rescale",
        **base_kwargs: Any,
    ):
        check_parallel(parallel)
        own = {"rescale": rescale, "per_replica": per_replica, "parallel": parallel}
        super().__init__(params, base, own, base_kwargs)
        for group in self.param_groups:
            check_group(group)
        check_replicas(self.param_groups)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "base"):  # once built: refuse a bad group before the base takes it
            params = param_group["params"]
            params = [params] if isinstance(params, torch.Tensor) else list(params)
            group = {**self.defaults, **param_group, "params": params}
            check_group(group)
            check_replicas([*self.param_groups, group])
            param_group = {**param_group, "params": params}
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The base's ``load_state_dict`` after the checks torch's optimizers make (as many groups,
        each with as many parameters) and two more, so that a mismatch fails here and not at
        ``step()``: the saved groups hold no hyperparameter the base lacks (the state of another
        optimizer), and each parameter's saved state has the keys of its current state (once it has
        one) and tensors of the parameter's shape where they have its number of dimensions (2 or
        more; a size 1 broadcasts, as in factored states). A state saved by the base optimizer alone
        loads too: keys it lacks, such as ``rescale``, keep their current values."""
        check_state_dict(self, state_dict)
        super().load_state_dict(state_dict)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            if needs_closure(self.base):
                raise TypeError(
                    f"{type(self.base).__name__} evaluates the loss itself: call step(closure) with a closure"
                    " that zeroes the gradients, computes the loss, calls backward() and returns the loss"
                )
            with torch.no_grad():
                self.transform_()
            return self.base.step()

        def projected() -> Any:
            with torch.enable_grad():
                loss = closure()
            with torch.no_grad():
                self.transform_()
            return loss

        return self.base.step(projected)

    def transform_(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.copy_(project(p, p.grad, group["rescale"], group["per_replica"], group["parallel"]))


GROKFAST_INIT = ("grad", "zero")  # how Grokfast's average h starts (see Grokfast)
GROKFAST_EMA = "grokfast_ema"  # the key of h in each parameter's optimizer state


class Grokfast(GradientWrapper):
    """Grokfast-EMA (Lee et al. 2024): before ``base`` steps, each gradient g gets the slow part of
    its history added,

        h ← α·h + (1 − α)·g,    g ← g + λ·h,

    elementwise, with one average h per parameter (so replicas of a batched model never mix).
    ``init`` says how h starts: ``"grad"`` (default, as the authors' released code does) sets h to
    the first gradient, so the first step is (1 + λ)·g; ``"zero"`` starts from h = 0, so the first
    step is (1 + λ(1 − α))·g. A parameter whose state lacks h (a state loaded from the base optimizer
    alone) restarts its average the same way.

    ``base`` is an optimizer class (or a factory taking param groups and keywords) built with every
    keyword in ``base_kwargs``, or an optimizer instance over the same parameters. With ⊥Grad, pass
    ``base=OrthoGrad`` (its keywords in ``base_kwargs``; ``functools.partial(OrthoGrad,
    base=torch.optim.SGD)`` for another base): the gradient is filtered first and then projected, so
    the step stays orthogonal to the current weights, which ⊥Grad exists to guarantee (an average of
    earlier projected gradients is not orthogonal to θ once θ has moved). ``alpha``, ``lamb`` and
    ``init`` are group keys (``grokfast_alpha``, ``grokfast_lamb``, ``grokfast_init``: they never
    clash with a base's own hyperparameters, such as RMSprop's ``alpha``) and may be set per group.
    h is kept in the shared optimizer state under ``"grokfast_ema"``, so ``state_dict`` holds it and
    a loaded state continues the filter exactly.

        opt = Grokfast(model.parameters(), base=torch.optim.AdamW, alpha=0.98, lamb=2.0, lr=1e-3)
    """

    OWN = ("grokfast_alpha", "grokfast_lamb", "grokfast_init")

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base: Callable[..., torch.optim.Optimizer] | torch.optim.Optimizer = torch.optim.AdamW,
        alpha: float = 0.98,
        lamb: float = 2.0,
        *,
        init: str = "grad",
        **base_kwargs: Any,
    ):
        own = {"grokfast_alpha": alpha, "grokfast_lamb": lamb, "grokfast_init": init}
        check_grokfast(own, prefix="")
        if isinstance(base, GradientWrapper):
            raise TypeError(
                f"base is a {type(base).__name__} instance; pass its class instead (base={type(base).__name__},"
                " its keywords beside alpha and lamb), so that Grokfast builds it over the same parameter groups"
            )
        super().__init__(params, base, own, base_kwargs)
        for group in self.param_groups:
            check_grokfast(group)
        if needs_closure(self.base):
            raise TypeError(
                f"{type(self.base).__name__} evaluates the loss several times per step; Grokfast filters one"
                " gradient per step: use a base that steps once per gradient (AdamW, SGD, ...)"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "base"):  # once built: refuse a bad group before the base takes it
            check_grokfast({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run ``closure`` (if given) with gradients enabled, filter the gradients, let ``base`` step;
        returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            started = self.transform_()
        self.base.step()
        for p, h in started:  # stored after the base's step: bases set up their state where it is empty
            self.state[p][GROKFAST_EMA] = h
        return loss

    def transform_(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Filter every gradient in place; returns the (parameter, h) whose h started at this step."""
        started = []
        for group in self.param_groups:
            alpha, lamb = group["grokfast_alpha"], group["grokfast_lamb"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                h = self.state.get(p, {}).get(GROKFAST_EMA)
                if h is None:
                    h = g.clone() if group["grokfast_init"] == "grad" else torch.zeros_like(g)
                    started.append((p, h))
                h.mul_(alpha).add_(g, alpha=1 - alpha)
                g.add_(h, alpha=lamb)
        return started


def check_grokfast(group: dict[str, Any], prefix: str = "grokfast_") -> None:
    """A :class:`Grokfast` group's own keys: α in [0, 1), λ a finite number >= 0, ``init`` one of
    :data:`GROKFAST_INIT`; each failure one line naming the key (``prefix``: "" for the
    constructor's keywords ``alpha``, ``lamb``, ``init``)."""
    alpha, lamb, init = group["grokfast_alpha"], group["grokfast_lamb"], group["grokfast_init"]
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha < 1:
        raise ValueError(f"{prefix}alpha={alpha!r} is not valid; expected a number in [0, 1) (the average's decay)")
    if isinstance(lamb, bool) or not isinstance(lamb, int | float) or not 0 <= lamb < math.inf:
        raise ValueError(f"{prefix}lamb={lamb!r} is not valid; expected a finite number >= 0 (the amplification)")
    if init not in GROKFAST_INIT:
        raise ValueError(f"{prefix}init={init!r} is not valid; choose one of: {', '.join(GROKFAST_INIT)}")


def constrain_norm(
    optimizer: torch.optim.Optimizer, multiple: float = 1.0, per_replica: bool = False
) -> torch.utils.hooks.RemovableHandle:
    """Omnigrok's constrained weight norm: after every ``optimizer.step()``, all of the optimizer's
    parameters are rescaled together, θ ← θ · N / |θ|, so that their total L2 norm |θ| (over every
    tensor) is N = ``multiple`` × their total norm at this call. With ``per_replica``, dimension 0
    of every parameter indexes independent models and each has its own norm and N. A zero norm is
    left as it is. Returns the hook's handle (``handle.remove()`` lifts the constraint).

    The target N is fixed here: call it on the freshly initialized model, before loading a
    checkpoint (the trainer builds the optimizer, and this hook, before it resumes). The hook runs
    through torch's step wrapper (``register_step_post_hook``)."""
    if isinstance(multiple, bool) or not isinstance(multiple, int | float) or not 0 < multiple < math.inf:
        raise ValueError(f"multiple={multiple!r} is not valid; expected a positive number (× the current norm)")
    if not getattr(optimizer, "runs_step_hooks", True):  # e.g. grokking.native.adamw.NativeAdamW
        name = type(optimizer).__name__
        raise TypeError(f"{name}.step runs no step hooks: build a Hooked{name} to constrain its norm")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not params:
        raise ValueError("constrain_norm: the optimizer has no parameters")
    flat = (lambda p: p) if per_replica else (lambda p: p.reshape(1, -1))  # noqa: E731
    if per_replica:
        check_group({"per_replica": True, "params": params})
        check_replicas([{"per_replica": True, "params": params}])
    with torch.no_grad():
        target = multiple * per_replica_norm([flat(p) for p in params])

    def rescale(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            norm = per_replica_norm([flat(p) for p in params])
            scale = torch.where(norm > 0, target / norm, 1.0)
            for p in params:
                p.mul_(scale.view(-1, *[1] * (p.dim() - 1)) if per_replica else scale.squeeze(0))

    return optimizer.register_step_post_hook(rescale)


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` has a ``closure`` argument without a default (LBFGS)."""
    try:
        closure = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return closure is not None and closure.default is inspect.Parameter.empty


def check_parallel(parallel: Any) -> None:
    if parallel not in PARALLEL:
        raise ValueError(f"parallel={parallel!r} is not valid; choose one of: {', '.join(PARALLEL)}")


def check_group(group: dict[str, Any]) -> None:
    """An :class:`OrthoGrad` group's own keys: ``parallel`` one of :data:`PARALLEL`; with
    ``per_replica``, every parameter has a replica dimension 0 and at least one more."""
    check_parallel(group.get("parallel", "rescale"))
    if group.get("per_replica"):
        for p in group["params"]:
            if p.dim() < 2:
                raise ValueError(
                    f"per_replica=True needs parameters of shape (replicas, ...) with at least 2 dimensions;"
                    f" a parameter of shape {tuple(p.shape)} has none: use per_replica=False for an ordinary model"
                )


def check_replicas(groups: list[dict[str, Any]]) -> None:
    """All ``per_replica`` parameters share the size of their dimension 0, the replica count."""
    shapes = [tuple(p.shape) for group in groups if group.get("per_replica") for p in group["params"]]
    for shape in shapes[1:]:
        if shape[0] != shapes[0][0]:
            raise ValueError(
                f"per_replica=True: parameters of shapes {shapes[0]} and {shape} disagree on the replica count"
                f" (dimension 0: {shapes[0][0]} vs {shape[0]}); use per_replica=False for an ordinary model"
            )


def adopt(
    instance: torch.optim.Optimizer, params: list, own: dict[str, Any], base_kwargs: dict[str, Any]
) -> tuple[list, Callable[..., torch.optim.Optimizer]]:
    """``OrthoGrad(params, base=instance)``: the instance's groups (given ⊥Grad's keys where they lack
    them) and state become the wrapper's; ``params`` must be the instance's parameters."""
    if isinstance(instance, GradientWrapper):
        raise TypeError(f"base is already a {type(instance).__name__}: wrap its base optimizer instead")
    if base_kwargs:
        raise TypeError(
            f"base is an optimizer instance, which keeps its own hyperparameters; {', '.join(sorted(base_kwargs))}"
            " would have no effect: set them on the instance, or pass its class as base"
        )
    given = [p for item in params for p in (item["params"] if isinstance(item, dict) else [item])]
    theirs = [p for group in instance.param_groups for p in group["params"]]
    if {id(p) for p in given} != {id(p) for p in theirs}:
        raise ValueError(
            f"base is an optimizer instance over {len(theirs)} other parameter tensors than the {len(given)} given:"
            " pass the parameters it was built with"
        )

    def build(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        for group in instance.param_groups:
            for key, value in own.items():
                group.setdefault(key, value)
        return instance

    return theirs, build


def check_state_dict(optimizer: GradientWrapper, state_dict: Any) -> None:
    """The checks of :meth:`OrthoGrad.load_state_dict`, each failing with one line."""
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError("load_state_dict: expected an optimizer state_dict, a dict with 'state' and 'param_groups'")
    saved, groups = state_dict["param_groups"], optimizer.param_groups
    if len(saved) != len(groups):
        raise ValueError(f"load_state_dict: the state has {len(saved)} parameter groups, this optimizer {len(groups)}")
    for i, (s, g) in enumerate(zip(saved, groups)):
        if len(s["params"]) != len(g["params"]):
            raise ValueError(
                f"load_state_dict: group {i} of the state has {len(s['params'])} parameters, this optimizer's"
                f" {len(g['params'])}"
            )
    known = {key for g in groups for key in g} | set(OrthoGrad.OWN)
    foreign = sorted({key for s in saved for key in s} - known)
    if foreign:
        raise ValueError(
            f"load_state_dict: the state's groups hold {', '.join(foreign)}, which {type(optimizer.base).__name__}"
            " does not have: it is the state of another optimizer"
        )
    states = state_dict["state"]
    for saved_id, p in zip(
        (i for s in saved for i in s["params"]), (p for g in groups for p in g["params"]), strict=True
    ):
        entry = states.get(saved_id)
        if not entry:
            continue
        current = optimizer.state.get(p)
        if current and set(entry) != set(current):
            raise ValueError(
                f"load_state_dict: the state of a parameter of shape {tuple(p.shape)} holds {', '.join(sorted(entry))};"
                f" {type(optimizer.base).__name__} keeps {', '.join(sorted(current))}"
            )
        for key, value in entry.items():
            if not torch.is_tensor(value):
                continue
            mine = current.get(key) if current else None
            if torch.is_tensor(mine) and mine.shape != value.shape:
                bad = True
            elif value.dim() == p.dim() >= 2:
                bad = any(a not in (b, 1) for a, b in zip(value.shape, p.shape))
            else:
                bad = False
            if bad:
                raise ValueError(
                    f"load_state_dict: the state's {key!r} of shape {tuple(value.shape)} does not fit a parameter of"
                    f" shape {tuple(p.shape)}: it was saved for another model"
                )


class NormalizedGrad(GradientWrapper):
    """Fig. 9's normalized gradient: per replica (dimension 0 of every parameter), the gradient of
    all tensors together is divided by its L2 norm before ``base`` steps; with ``orthogonal``, each
    tensor's gradient is first replaced by its rescaled ⊥ component, as in :class:`OrthoGrad`."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base: Callable[..., torch.optim.Optimizer],
        orthogonal: bool = False,
        **base_kwargs: Any,
    ):
        super().__init__(params, base, {"orthogonal": orthogonal}, base_kwargs)

    def transform_(self) -> None:
        params = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    params.append(p)
                    if group["orthogonal"]:
                        p.grad.copy_(orthogonal_component(p, p.grad))
        norm = per_replica_norm([p.grad for p in params])
        norm = torch.where(norm > 0, norm, 1.0)  # an exactly-zero gradient stays zero
        for p in params:
            p.grad.div_(norm.view(-1, *[1] * (p.dim() - 1)))


def implementation(params: list[torch.nn.Parameter]) -> dict[str, bool]:
    """torch's fused (one kernel per step) implementation on CPU and CUDA, else the foreach one."""
    if all(p.device.type in ("cpu", "cuda") for p in params):
        return {"fused": True}
    return {"foreach": True}


Base = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class OptimizerEntry:
    """An ``optimizer.base`` option: ``base`` is the optimizer class (or factory); it is built with
    the option's own parameters (``params=`` of its registration) as keywords, lists as tuples.
    ``implementation``: it takes torch's ``fused``/``foreach`` flags (:func:`implementation`).
    ``check(cfg)`` raises a :class:`grokking.errors.ConfigError` on values that are each in range but
    not together."""

    base: Base
    implementation: bool = False
    check: Callable[[Any], None] | None = None


def check_decoupled_decay(cfg: Any) -> None:
    """AdamW's decoupled decay multiplies the weights by 1 − lr × weight_decay every step: at
    lr × weight_decay ≥ 1 that zeroes or flips them, so the pair is refused."""
    if cfg.lr * cfg.weight_decay >= 1:
        raise ConfigError(
            f"optimizer.weight_decay={cfg.weight_decay:g} with optimizer.lr={cfg.lr:g} scales the weights by"
            f" 1 − lr × weight_decay = {1 - cfg.lr * cfg.weight_decay:g} every step (AdamW's decoupled decay),"
            " which zeroes or flips them; expected lr × weight_decay < 1"
        )


# read by every base: how the gradient is transformed before the base optimizer steps
ORTHOGONAL = Param("orthogonal", bool, False, "⊥Grad: step with the gradient's component orthogonal to θ")
NORMALIZE_GRAD = Param("normalize_grad", bool, False, "divide the gradient by its full L2 norm before stepping")
LR = Param("lr", float, 1e-3, "learning rate", low=0, low_open=True, expected="a positive number")
WEIGHT_DECAY = Param("weight_decay", float, 0.0, "decoupled decay (AdamW) or L2 term added to the gradient", low=0)
# read by every base: the interventions of other grokking papers around the base's step
GROKFAST = Param("grokfast", bool, False, "Grokfast-EMA: add λ × the gradient's moving average h to it before stepping")
GROKFAST_PARAMS = (
    GROKFAST,
    Param(
        "grokfast_alpha", float, 0.98, "Grokfast (grokfast=true): h ← α·h + (1 − α)·g", 0, 1, high_open=True,
        needs="grokfast",
    ),
    Param("grokfast_lamb", float, 2.0, "Grokfast (grokfast=true): g ← g + λ·h", low=0, needs="grokfast"),
    Param(
        "grokfast_init", str, "grad", "Grokfast (grokfast=true): h starts at the first gradient (grad) or 0 (zero)",
        choices=GROKFAST_INIT, needs="grokfast",
    ),
)  # fmt: skip
NORM_CONSTRAINT = Param(
    "norm_constraint", float, 0.0,
    "after each step, rescale each replica's parameters to this × their initial total L2 norm (0 = off; Omnigrok)",
    low=0, expected="a number >= 0 (0 = off)",
)  # fmt: skip
OPTIMIZERS: Registry[OptimizerEntry] = Registry(
    "optimizer.base", OptimizerEntry, shared=(ORTHOGONAL, NORMALIZE_GRAD, *GROKFAST_PARAMS, NORM_CONSTRAINT)
)
MAX_EPS = 1.0  # Adam's eps above this swamps every gradient: the model never moves

OPTIMIZERS.register(
    "adamw",
    torch.optim.AdamW,
    params=(
        LR,
        Param(
            "betas", list[float], [0.9, 0.99], "moment decay rates", 0, 1, high_open=True, length=2,
            expected="two numbers in [0, 1)",
        ),
        Param("eps", float, 1e-25, "added to the denominator", 0, MAX_EPS),
        WEIGHT_DECAY,
    ),
    implementation=True,
    check=check_decoupled_decay,
)  # fmt: skip
OPTIMIZERS.register(
    "sgd",
    torch.optim.SGD,
    params=(LR, Param("momentum", float, 0.0, "heavy-ball momentum", 0, 1, high_open=True), WEIGHT_DECAY),
    implementation=True,
)


def build_optimizer(
    cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter], native: ModuleType | None = None
) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` for batched parameters (dimension 0 indexes the replicas): the base
    optimizer of ``OPTIMIZERS[cfg.base]`` with its parameters' values, wrapped in :class:`OrthoGrad`
    (⊥Grad, ``orthogonal``) or :class:`NormalizedGrad` (``normalize_grad``), that in
    :class:`Grokfast` (``grokfast``: the filter comes first), with :func:`constrain_norm` per replica
    (``norm_constraint``, its target the norm of ``params`` now: call it before loading a
    checkpoint). ``native``, the module of :mod:`grokking.native`, gives AdamW its C++ update where
    :func:`grokking.native.adamw.native_adamw` says it applies."""
    params = list(params)
    entry, hyper = OPTIMIZERS[cfg.base], OPTIMIZERS.arguments(cfg)
    base, native_base = entry.base, None
    if base is torch.optim.AdamW and native is not None:
        from grokking.native.adamw import native_adamw  # with the kernels; imported only where they run

        native_base = native_adamw(params, native, step_hooks=bool(cfg.norm_constraint))
    if native_base is not None:
        base = native_base
    elif entry.implementation:
        hyper = {**hyper, **implementation(params)}
    if cfg.normalize_grad:
        base = partial(NormalizedGrad, base=base, orthogonal=cfg.orthogonal)
    elif cfg.orthogonal:
        base = partial(OrthoGrad, base=base, per_replica=True)
    if cfg.grokfast:
        alpha, lamb, init = cfg.grokfast_alpha, cfg.grokfast_lamb, cfg.grokfast_init
        optimizer = Grokfast(params, base, alpha=alpha, lamb=lamb, init=init, **hyper)
    else:
        optimizer = base(params, **hyper)
    if cfg.norm_constraint:
        constrain_norm(optimizer, cfg.norm_constraint, per_replica=True)
    return optimizer


IMPLEMENTATION_KEYS = ("foreach", "fused", "capturable")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimizer's own implementation flags: a run
    may resume with another ``cpu_kernel`` or device than the one that saved ``state``."""
    flags = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, flags):
        group.update(own)


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """Where the optimizer's update runs: "native" (``grokking.native.adamw.NativeAdamW``, in C++) or
    "torch"."""
    while isinstance(optimizer, GradientWrapper):  # Grokfast around ⊥Grad around the base
        optimizer = optimizer.base
    return getattr(optimizer, "kernel", "torch")
