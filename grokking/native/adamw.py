"""AdamW's update as a C++ kernel (``adamw.cpp``), as a ``torch.optim.AdamW``.

:func:`native_adamw` is what ``grokking.optim.build_optimizer`` asks, given the loaded kernel
module (:func:`grokking.native.load`), for the AdamW of a run: :class:`NativeAdamW` (or
:class:`HookedNativeAdamW` where step hooks must run) where :func:`applies`, else None and torch's
AdamW. The optimizer registry knows nothing of it; ``import grokking`` does not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from types import ModuleType
from typing import Any

import torch


class NativeAdamW(torch.optim.AdamW):
    """torch's AdamW (the same hyperparameters, state and ``state_dict``) whose update runs in
    ``grokking/native/adamw.cpp``: the same formula, every operation rounded to the parameters' dtype,
    all tensors in one call. In float32 it computes each operation in double and rounds it to float
    (the same value) where an operand is tiny, so that moments that have decayed into float32's
    subnormal range, as they do for good once many gradients are exactly zero, cost no microcode
    assists; torch's fused step slowed 3.5x on them (docs/speed.md). Its results equal torch's AdamW to rounding
    (tests/test_native_adamw.py).

    Its ``step`` is left out of the wrapper that torch puts around every optimizer's step for
    profiler labels and step hooks (≈ 50 µs a step, a quarter of a small run's optimizer step), so
    hooks registered with ``register_step_pre_hook`` / ``register_step_post_hook`` do not run."""

    kernel = "native"  # where the update runs (grokking.optim.optimizer_kind)
    runs_step_hooks = False  # grokking.optim.constrain_norm refuses it

    def __init__(self, params: Iterable[torch.nn.Parameter], module: ModuleType, **hyper: Any):
        super().__init__(params, **hyper)
        self.module = module

    def step(self, closure=None) -> None:
        if closure is not None:
            raise ValueError("NativeAdamW.step takes no closure (full-batch training computes the loss before it)")
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if not state:  # as torch's AdamW initializes it
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            lr, (beta1, beta2) = group["lr"], group["betas"]
            self.module.adamw_step(
                params,
                [p.grad for p in params],
                [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states],
                [state["step"] for state in states],  # counted up in the call
                lr,
                beta1,
                beta2,
                group["weight_decay"],
                group["eps"],
            )

    step.hooked = True  # torch's Optimizer wraps a step only where this is unset


class HookedNativeAdamW(NativeAdamW):
    """:class:`NativeAdamW` whose ``step`` goes through torch's wrapper, so that step hooks run
    (``grokking.optim.constrain_norm``'s post-step rescaling) at the wrapper's small cost per step."""

    runs_step_hooks = True

    def step(self, closure=None) -> None:
        return super().step(closure)


def applies(params: list[torch.nn.Parameter], native: ModuleType) -> bool:
    """Whether :class:`NativeAdamW` steps these AdamW parameters: CPU, float32 or float64, and a
    build with its vectorized paths (AVX-512; elsewhere torch's fused step is faster)."""
    dtypes = (torch.float32, torch.float64)
    cpu = all(p.device.type == "cpu" and p.dtype in dtypes for p in params)
    return cpu and native.adamw_vectorized()


def native_adamw(
    params: list[torch.nn.Parameter], module: ModuleType, step_hooks: bool = False
) -> Callable[..., torch.optim.Optimizer] | None:
    """The C++ AdamW for ``params`` (built with AdamW's hyperparameters as keywords), or None where it
    does not apply (:func:`applies`). ``step_hooks``: one whose ``step`` runs step hooks."""
    if not applies(params, module):
        return None
    return partial(HookedNativeAdamW if step_hooks else NativeAdamW, module=module)
