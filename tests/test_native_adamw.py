"""The C++ AdamW update (``NativeAdamW``) is AdamW in the parameters' own arithmetic, also where the
moments are subnormal, and interchangeable with torch's AdamW (state, checkpoints)."""

import math
import shutil
import types

import numpy as np
import pytest
import torch

import grokking.native as native
from grokking.config import OptimizerConfig
from grokking.native.adamw import NativeAdamW
from grokking.optim import build_optimizer, load_optimizer_state, optimizer_kind

HYPER = {"lr": 1e-3, "betas": (0.9, 0.99), "eps": 1e-25, "weight_decay": 0.1}
SHAPES = [(43, 200), (200, 200), (200, 2), (1, 200), (3,)]  # full 16-element blocks and tails


@pytest.fixture(scope="module")
def module():
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler: the kernels cannot be built here (torch's AdamW is used)")
    return native.load()


def reference_step(p, g, m, v, t, lr, betas, eps, weight_decay):
    """The update of adamw.cpp in numpy's elementwise IEEE operations of the dtype (the constants
    rounded to it first). Not torch's: its float32 sqrt may differ from the correctly rounded one
    by an ulp, and it divides by a 0-d tensor as a product with the reciprocal."""
    b1, b2 = betas
    p, g, m, v = (x.numpy() for x in (p, g, m, v))
    c = p.dtype.type
    p = p * c(1 - lr * weight_decay)
    m = m * c(b1) + g * c(1 - b1)
    v = v * c(b2) + (g * c(1 - b2)) * g
    denom = np.sqrt(v) / c(math.sqrt(1 - b2**t)) + c(eps)
    return [torch.from_numpy(x) for x in (p - (m * c(lr / (1 - b1**t))) / denom, m, v)]


def tensors(dtype, kind, seed):
    """Parameters, gradients and moments: "normal" values, or a late-run state where most
    gradients are zero and the moments tiny or subnormal."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape in SHAPES:
        p = torch.randn(shape, generator=gen, dtype=dtype)
        g = torch.randn(shape, generator=gen, dtype=dtype) * 1e-3
        m = torch.randn(shape, generator=gen, dtype=dtype) * 1e-3
        v = torch.rand(shape, generator=gen, dtype=dtype) * 1e-6
        if kind == "subnormal":
            tiny = torch.finfo(dtype).smallest_normal
            pick = torch.rand(shape, generator=gen)
            g = torch.where(pick < 0.8, 0.0, g * torch.where(pick < 0.9, 1e-30, 1.0))
            m = torch.where(
                pick < 0.5, torch.randint(-6, 7, shape, generator=gen).to(dtype) * tiny * 2.0**-23, m * 1e-20
            )
            v = torch.where(
                pick < 0.3, torch.randint(0, 60, shape, generator=gen).to(dtype) * tiny * 2.0**-23, v * 1e-30
            )
            p = torch.where(pick > 0.97, torch.randint(-9, 9, shape, generator=gen).to(dtype) * tiny * 2.0**-20, p)
        out.append([p.to(dtype), g.to(dtype), m.to(dtype), v.to(dtype)])
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["normal", "subnormal"])
def test_update_is_the_dtypes_own_arithmetic_bit_for_bit(module, dtype, kind):
    """Computed in double and rounded (float32) or in float32 directly, by block: every element equals
    the same formula in the dtype's own IEEE operations, subnormal moments included."""
    state = tensors(dtype, kind, seed=0)
    if kind == "subnormal" and dtype == torch.float32:
        assert any(((m != 0) & (m.abs() < torch.finfo(dtype).smallest_normal)).any() for _, _, m, _ in state)
    for t in (1, 7):
        expected = [reference_step(p, g, m, v, t, **HYPER) for p, g, m, v in state]
        steps = [torch.tensor(t - 1.0) for _ in state]
        lr, (b1, b2) = HYPER["lr"], HYPER["betas"]
        module.adamw_step(
            *[[s[i] for s in state] for i in range(4)], steps, lr, b1, b2, HYPER["weight_decay"], HYPER["eps"]
        )
        assert all(s.item() == t for s in steps)
        for (p, _, m, v), (ep, em, ev) in zip(state, expected):
            assert torch.equal(m, em) and torch.equal(v, ev) and torch.equal(p, ep)


def optimizers(module, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    return (ours, NativeAdamW(ours, module, **HYPER)), (theirs, torch.optim.AdamW(theirs, **HYPER, fused=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trajectory_matches_torchs_fused_adamw(module, dtype):
    """Torch's fused AdamW rounds its first moment differently (a fused multiply-add); the parameters
    still agree to rounding over many steps, some of them with exactly-zero gradients."""
    (ours, opt), (theirs, ref) = optimizers(module, dtype)
    gen = torch.Generator().manual_seed(1)
    for step in range(60):
        for p, q in zip(ours, theirs):
            g = torch.randn(p.shape, generator=gen, dtype=dtype) * (0.0 if step % 3 == 2 else 1e-2)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=rtol, atol=rtol)
        m, m_ref = opt.state[p]["exp_avg"], ref.state[q]["exp_avg"]
        torch.testing.assert_close(m, m_ref, rtol=rtol, atol=rtol * m_ref.abs().max().item())  # cancellations
        assert opt.state[p]["step"].item() == ref.state[q]["step"].item() == 60


def test_state_dicts_move_between_native_and_torch_adamw(module):
    (ours, opt), (theirs, ref) = optimizers(module)
    for p, q in zip(ours, theirs):
        p.grad = torch.ones_like(p)
        q.grad = torch.ones_like(q)
    opt.step()
    ref.step()
    load_optimizer_state(ref, opt.state_dict())  # native -> torch: torch keeps its fused implementation
    assert ref.param_groups[0]["fused"] is True
    load_optimizer_state(opt, ref.state_dict())  # torch -> native
    assert opt.param_groups[0]["fused"] is None
    opt.step()
    ref.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_build_optimizer_uses_it_for_adamw_on_cpu_only(module):
    params = [torch.nn.Parameter(torch.zeros(1, 3))]  # one replica (⊥Grad projects per replica)
    adamw = OptimizerConfig(base="adamw", orthogonal=True)
    assert optimizer_kind(build_optimizer(adamw, params, module)) == "native"  # ⊥Grad wraps it
    assert optimizer_kind(build_optimizer(adamw, params)) == "torch"
    assert optimizer_kind(build_optimizer(OptimizerConfig(base="sgd"), params, module)) == "torch"
    half = [torch.nn.Parameter(torch.zeros(1, 3, dtype=torch.float16))]
    assert optimizer_kind(build_optimizer(OptimizerConfig(base="adamw"), half, module)) == "torch"
    scalar_only = types.SimpleNamespace(adamw_vectorized=lambda: False)  # a build without AVX-512
    assert optimizer_kind(build_optimizer(adamw, params, scalar_only)) == "torch"


def test_a_run_records_its_optimizer_and_resumes_across_it(run):
    overrides = ["epochs=6", "checkpoint_every=3", "dataset.modulus=23", "optimizer=adamw"]
    summary, out = run([*overrides, "cpu_kernel=auto"])
    first = summary["optimizer_step"]
    if shutil.which("c++") is not None and native.load().adamw_vectorized():
        assert first == "native"
    (out / "summary.json").unlink()  # as if interrupted after the checkpoint at epoch 3
    summary, _ = run([*overrides[1:], "epochs=8", "cpu_kernel=torch"], out)
    assert summary["status"] == "completed" and summary["epoch"] == 8
    assert summary["optimizer_step"] == ("torch" if first == "torch" else "mixed")  # what trained every stretch
    assert [s["optimizer_step"] for s in summary["stretches"]] == [first, "torch"]


def test_the_native_adamw_lives_with_the_kernels_and_the_optimizers_do_not_import_it():
    """grokking.optim (imported by ``import grokking``, torch only) reaches the C++ AdamW only from
    inside build_optimizer, where a kernel module was given: never at import."""
    import ast
    from pathlib import Path

    import grokking.optim as optim

    assert NativeAdamW.__module__ == "grokking.native.adamw" and not hasattr(optim, "NativeAdamW")
    tree = ast.parse(Path(optim.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in modules if m.startswith("grokking.native")], modules


def test_constrain_norm_refuses_an_optimizer_whose_step_runs_no_hooks():
    from grokking.optim import constrain_norm

    fake = types.SimpleNamespace(adamw_step=lambda *args: None)
    params = [torch.nn.Parameter(torch.ones(3))]
    with pytest.raises(TypeError, match="NativeAdamW.step runs no step hooks: build a HookedNativeAdamW"):
        constrain_norm(NativeAdamW(params, fake, **HYPER))
    from grokking.native.adamw import HookedNativeAdamW

    constrain_norm(HookedNativeAdamW(params, fake, **HYPER)).remove()
