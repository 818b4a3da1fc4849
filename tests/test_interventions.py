"""The grokking interventions of other papers, each against its paper's formula on a hand-made case:
Grokfast-EMA (Lee et al. 2024), the z-loss (PaLM; Wortsman et al. 2023), the constrained weight norm
(Omnigrok, Liu, Michaud & Tegmark 2023) and the output scale (Kumar et al. 2024); and as training
settings: checked, refused where they have no effect, passed to the run."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch

import grokking
from grokking.checkpoint import load_checkpoint
from grokking.cli import compose
from grokking.config import ModelConfig
from grokking.data import build_dataset
from grokking.errors import ConfigError
from grokking.fused import build_loss
from grokking.models import MLP, build_model
from grokking.native import unsupported
from grokking.native.adamw import HookedNativeAdamW, NativeAdamW
from grokking.optim import (
    GROKFAST_EMA,
    Grokfast,
    OrthoGrad,
    build_optimizer,
    constrain_norm,
    optimizer_kind,
    per_replica_norm,
)
from grokking.train import to_config
from grokking.validation import validate

TINY = ["device=cpu", "dataset.modulus=23", "model.width=16", "log_every=2"]


def steps(opt: torch.optim.Optimizer, p: torch.Tensor, grads: list[list[float]]) -> list[list[float]]:
    """Step ``opt`` with each given gradient of ``p`` in turn; the parameter after each step."""
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=p.dtype)
        opt.step()
        out.append(p.detach().tolist())
    return out


# -- Grokfast-EMA: h ← α·h + (1 − α)·g, g ← g + λ·h --------------------------------------------------
def test_grokfast_by_hand_with_h_starting_at_the_first_gradient():
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = Grokfast([p], base=torch.optim.SGD, alpha=0.5, lamb=2.0, lr=1.0)
    # h1 = g1 = 1 (then 0.5·1 + 0.5·1 = 1), step 1 + 2·1 = 3; h2 = 0.5·1 + 0.5·3 = 2, step 3 + 2·2 = 7
    assert steps(opt, p, [[1.0], [3.0]]) == [[-3.0], [-10.0]]
    assert opt.state[p][GROKFAST_EMA].tolist() == [2.0]


def test_grokfast_by_hand_with_h_starting_at_zero():
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = Grokfast([p], base=torch.optim.SGD, alpha=0.5, lamb=2.0, init="zero", lr=1.0)
    # h1 = 0.5·0 + 0.5·1 = 0.5, step 1 + 2·0.5 = 2; h2 = 0.5·0.5 + 0.5·3 = 1.75, step 3 + 2·1.75 = 6.5
    assert steps(opt, p, [[1.0], [3.0]]) == [[-2.0], [-8.5]]


def test_grokfast_with_lamb_zero_is_its_base_and_filters_each_replica_alone():
    torch.manual_seed(0)
    p = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    grads = [torch.randn(3, 4, 5, dtype=torch.float64) for _ in range(4)]
    a = Grokfast([p], base=torch.optim.AdamW, lamb=0.0, lr=1e-2, weight_decay=0.1)
    b = torch.optim.AdamW([q], lr=1e-2, weight_decay=0.1)
    for g in grads:
        p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert torch.equal(p, q)
    # elementwise: replica 0's steps do not depend on the others' gradients
    r = p.detach().clone().requires_grad_()
    s = r[:1].detach().clone().requires_grad_()
    c, d = Grokfast([r], base=torch.optim.SGD, lr=0.1), Grokfast([s], base=torch.optim.SGD, lr=0.1)
    for g in grads:
        r.grad, s.grad = g.clone(), g[:1].clone()
        c.step()
        d.step()
    assert torch.equal(r[:1], s)


def test_grokfast_filters_before_the_orthogonal_projection():
    """Grokfast(base=OrthoGrad): g̃ = g + λh first, then ⊥Grad projects g̃ ⊥ the current θ and rescales
    it to |g̃|; computed here with plain floats."""
    p = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = Grokfast([p], base=partial(OrthoGrad, base=torch.optim.SGD), alpha=0.5, lamb=1.0, lr=1.0)
    (t1, t2) = steps(opt, p, [[1.0, 1.0], [0.0, 1.0]])
    # step 1: h = g = (1, 1), g̃ = (2, 2), ⊥ θ = (1, 0): (0, 2), rescaled to |g̃| = 2√2
    assert t1 == pytest.approx([1.0, -2 * math.sqrt(2)], abs=1e-15)
    # step 2: h = 0.5·(1, 1) + 0.5·(0, 1) = (0.5, 1), g̃ = (0.5, 2), projected ⊥ θ1 and rescaled
    g = [0.5, 2.0]
    coef = (g[0] * t1[0] + g[1] * t1[1]) / (t1[0] ** 2 + t1[1] ** 2)
    perp = [g[0] - coef * t1[0], g[1] - coef * t1[1]]
    k = math.hypot(*g) / math.hypot(*perp)
    assert t2 == pytest.approx([t1[0] - k * perp[0], t1[1] - k * perp[1]], abs=1e-14)
    assert (t2[0] - t1[0]) * t1[0] + (t2[1] - t1[1]) * t1[1] == pytest.approx(0, abs=1e-14)  # a ⊥ step


def test_grokfast_state_dict_continues_bit_identically_and_keeps_the_groups():
    torch.manual_seed(1)
    p = torch.randn(4, 3, requires_grad=True)
    grads = [torch.randn(4, 3) for _ in range(6)]
    opt = Grokfast([{"params": [p], "grokfast_alpha": 0.9}], base=torch.optim.AdamW, lr=1e-2)
    assert opt.param_groups[0]["grokfast_alpha"] == 0.9 and opt.param_groups[0]["grokfast_lamb"] == 2.0
    for g in grads[:3]:
        p.grad = g.clone()
        opt.step()
    saved, at = copy.deepcopy(opt.state_dict()), p.detach().clone()
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq", GROKFAST_EMA}
    for g in grads[3:]:
        p.grad = g.clone()
        opt.step()
    q = at.clone().requires_grad_()
    other = Grokfast([q], base=torch.optim.AdamW, alpha=0.5, lr=1.0)
    other.load_state_dict(saved)
    assert other.param_groups[0]["grokfast_alpha"] == 0.9 and other.param_groups[0]["lr"] == 1e-2
    for g in grads[3:]:
        q.grad = g.clone()
        other.step()
    assert torch.equal(p, q)


def test_grokfast_is_an_optimizer_with_closures_and_the_top_level_export():
    assert grokking.Grokfast is Grokfast and "Grokfast" in grokking.__all__
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = Grokfast([p], base=torch.optim.SGD, alpha=0.5, lamb=1.0, lr=0.1)
    assert isinstance(opt, torch.optim.Optimizer) and opt.defaults["lr"] == 0.1

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 5.0
    assert p.tolist() == pytest.approx([1 - 0.1 * 4, 2 - 0.1 * 8])  # g = (2, 4), h = g: (1 + 1)·g
    sgd = torch.optim.SGD([p], lr=0.1)
    wrapped = Grokfast([p], base=sgd)
    assert wrapped.base is sgd and sgd.param_groups[0]["grokfast_lamb"] == 2.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"alpha": 1.0}, ValueError, r"^alpha=1.0 is not valid; expected a number in \[0, 1\)"),
        ({"lamb": -1.0}, ValueError, r"^lamb=-1.0 is not valid; expected a finite number >= 0"),
        ({"lamb": math.inf}, ValueError, r"^lamb=inf is not valid"),
        ({"init": "ema"}, ValueError, r"^init='ema' is not valid; choose one of: grad, zero$"),
        ({"base": torch.optim.LBFGS}, TypeError, r"^LBFGS evaluates the loss several times per step"),
        ({"base": "adamw"}, TypeError, r"^base='adamw' is not an optimizer class"),
    ],
)
def test_grokfast_refuses_bad_values_in_one_line(kwargs, error, message):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(error, match=message):
        Grokfast([p], **kwargs)
    if "alpha" in kwargs:  # a group's own value: named by its group key
        opt = Grokfast([p])
        with pytest.raises(ValueError, match=r"^grokfast_alpha=1.0 is not valid"):
            opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "grokfast_alpha": 1.0})
        assert len(opt.param_groups) == 1


def test_grokfast_refuses_a_wrapper_instance_as_base():
    p = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(TypeError, match="^base is a OrthoGrad instance; pass its class instead"):
        Grokfast([p], base=OrthoGrad([p]))


# -- z-loss: CE + c·(log Σ_j exp z_j)² ----------------------------------------------------------------
def test_zloss_by_hand():
    cfg, _ = to_config(compose(["loss=zloss", "loss.z_coef=0.5"]))
    z = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    # row 0: Σ exp = 3 + 1 = 4, CE = log 4 − 0; row 1: Σ exp = 2, CE = log 2
    expected = [math.log(4) + 0.5 * math.log(4) ** 2, math.log(2) + 0.5 * math.log(2) ** 2]
    assert build_loss(cfg.loss)(z, y, torch.float64).tolist() == pytest.approx(expected, rel=1e-15)


# -- constrained weight norm: θ ← θ · c|θ0| / |θ| after every step ---------------------------------
def test_norm_constraint_by_hand_over_all_tensors_together():
    a = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.0]], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=1.0)
    handle = constrain_norm(opt, 2.0)  # |θ0| = 5: the target is 10
    a.grad, b.grad = torch.tensor([-3.0, 0.0], dtype=torch.float64), torch.tensor([[-6.0]], dtype=torch.float64)
    opt.step()  # (6, 4, 6): norm √88, rescaled by 10 / √88
    k = 10 / math.sqrt(88)
    assert a.tolist() == pytest.approx([6 * k, 4 * k], rel=1e-15) and b.item() == pytest.approx(6 * k, rel=1e-15)
    handle.remove()
    a.grad.zero_(), b.grad.zero_()
    opt.step()
    assert a.tolist() == pytest.approx([6 * k, 4 * k], rel=1e-15)  # removed: no rescaling


def test_norm_constraint_per_replica_keeps_each_replica_s_own_norm():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)  # (replicas, ...)
    v = torch.tensor([[12.0], [0.0]], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w, v], lr=1.0)
    constrain_norm(opt, 1.0, per_replica=True)  # targets: √(9 + 16 + 144) = 13 and 1
    w.grad = torch.tensor([[-3.0, -4.0], [-1.0, -1.0]], dtype=torch.float64)
    v.grad = torch.tensor([[-12.0], [0.0]], dtype=torch.float64)
    opt.step()  # replica 0 doubles (norm 26) and comes back; replica 1 is (2, 1 | 0), norm √5
    assert w[0].tolist() == pytest.approx([3.0, 4.0]) and v[0].tolist() == pytest.approx([12.0])
    k = 1 / math.sqrt(5)
    assert w[1].tolist() == pytest.approx([2 * k, k], rel=1e-15) and v[1].item() == 0.0
    with pytest.raises(ValueError, match="per_replica=True needs parameters of shape"):
        constrain_norm(torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=1.0), per_replica=True)
    with pytest.raises(ValueError, match="^multiple=0 is not valid; expected a positive number"):
        constrain_norm(opt, 0)


class StandInNative:
    """In place of the compiled module (where no compiler builds it): a plain gradient step."""

    @staticmethod
    def adamw_vectorized() -> bool:
        return True

    @staticmethod
    def adamw_step(params, grads, exp_avgs, exp_avg_sqs, steps, lr, *hyper):
        with torch.no_grad():
            for p, g, step in zip(params, grads, steps):
                p.sub_(lr * g)
                step += 1


@pytest.mark.parametrize("compiled", [False, True])
def test_norm_constraint_runs_after_the_native_adamw_step_and_around_wrappers(compiled):
    native = StandInNative()
    if compiled:
        native = pytest.importorskip("grokking.native").build()
        if isinstance(native, Exception) or not native.adamw_vectorized():
            pytest.skip(f"no compiled AdamW here: {native}")
    cfg, _ = to_config(compose(["optimizer=adamw", "optimizer.norm_constraint=0.5", "optimizer.lr=0.1"]))
    for grokfast in (False, True):
        cfg.optimizer.grokfast = grokfast
        params = [torch.randn(2, 5, 3), torch.randn(2, 3, 4)]
        params = [torch.nn.Parameter(p) for p in params]
        before = per_replica_norm([p.detach() for p in params])
        opt = build_optimizer(cfg.optimizer, params, native)
        assert optimizer_kind(opt) == "native"
        assert isinstance(opt if not grokfast else opt.base, HookedNativeAdamW)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
        torch.testing.assert_close(per_replica_norm([p.detach() for p in params]), 0.5 * before)
    with pytest.raises(TypeError, match="NativeAdamW.step runs no step hooks"):
        constrain_norm(NativeAdamW(params, native, lr=0.1), 1.0)


# -- output scale: f(x) = α·net(x) ------------------------------------------------------------------
def test_output_scale_by_hand_on_a_tiny_mlp():
    cfg = ModelConfig(name="mlp", depth=1, width=1, output_scale=0.5)
    model = MLP(cfg, in_dim=2, out_dim=1, vocab=None, gens=[torch.Generator().manual_seed(0)]).double()
    with torch.no_grad():
        model.weights[0].copy_(torch.tensor([[[1.0], [2.0]]]))  # (replica, in, out)
        model.weights[1].copy_(torch.tensor([[[3.0]]]))
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    # h = x·w0 = (3, 0); relu(h)·w1 = (9, 0); × α = 0.5
    assert model(x).flatten().tolist() == [4.5, 0.0]


@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_output_scale_multiplies_the_logits_and_leaves_the_parameters_alone(name):
    data = build_dataset(to_config(compose(["dataset.modulus=11"]))[0].dataset)
    small = {"width": 8} if name == "mlp" else {"d_model": 8, "n_heads": 2, "d_mlp": 16}
    plain = build_model(ModelConfig(name=name, **small), data, [0, 1])
    scaled = build_model(ModelConfig(name=name, output_scale=3.0, **small), data, [0, 1])
    for p, q in zip(plain.parameters(), scaled.parameters()):
        assert torch.equal(p, q)  # not init_scale: the weights are the default init's
    with torch.no_grad():
        assert torch.equal(scaled(data.test_x), plain(data.test_x) * 3.0)


def test_the_cpp_step_claims_the_output_scale_and_the_z_loss_and_leaves_optimizer_settings_to_the_optimizer():
    def why(*overrides):
        return unsupported(to_config(compose(["device=cpu", *overrides]))[0])

    assert why("model.output_scale=2") is None and why("model=transformer", "model.output_scale=0.5") is None
    assert why("loss=zloss", "loss.z_coef=0.01") is None  # tests/test_native.py: both match autograd
    # Grokfast and the norm constraint act on the gradients and weights after the step: it still runs
    assert why("optimizer.grokfast=true", "optimizer.norm_constraint=1") is None


# -- the training settings -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["optimizer.grokfast_alpha=0.9"],
            "optimizer.grokfast_alpha=0.9 has no effect with optimizer.grokfast=false; "
            "it is read with optimizer.grokfast=true",
        ),
        (["optimizer.grokfast_lamb=5"], "optimizer.grokfast_lamb=5.0 has no effect with optimizer.grokfast=false"),
        (["optimizer.grokfast_init=zero"], "optimizer.grokfast_init=zero has no effect with optimizer.grokfast=false"),
        (
            ["optimizer.grokfast=true", "optimizer.grokfast_alpha=1"],
            "optimizer.grokfast_alpha=1.0 is not valid; expected a number in [0, 1)",
        ),
        (
            ["optimizer.grokfast=true", "optimizer.grokfast_lamb=-1"],
            "optimizer.grokfast_lamb=-1.0 is not valid; expected a number >= 0",
        ),
        (
            ["optimizer.grokfast=true", "optimizer.grokfast_init=ema"],
            "optimizer.grokfast_init=ema is not valid; choose one of: grad, zero",
        ),
        (
            ["optimizer.norm_constraint=-1"],
            "optimizer.norm_constraint=-1.0 is not valid; expected a number >= 0 (0 = off)",
        ),
        (["model.output_scale=0"], "model.output_scale=0.0 is not valid; expected a number in [0.0001, 10000]"),
        (["model=transformer", "model.output_scale=1e5"], "model.output_scale=100000.0 is not valid"),
    ],
)
def test_the_settings_are_range_checked_and_refused_where_they_have_no_effect(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(to_config(compose(["device=cpu", *overrides]))[0])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_settings_reach_the_optimizer():
    cfg, _ = to_config(
        compose(["optimizer=perp_adamw", "optimizer.grokfast=true", "optimizer.grokfast_alpha=0.9",
                 "optimizer.grokfast_lamb=5", "optimizer.grokfast_init=zero", "optimizer.norm_constraint=2"])
    )  # fmt: skip
    validate(cfg)
    p = torch.nn.Parameter(torch.randn(2, 3, 4))
    opt = build_optimizer(cfg.optimizer, [p])
    assert isinstance(opt, Grokfast) and isinstance(opt.base, OrthoGrad) and opt.base.param_groups[0]["per_replica"]
    group = opt.param_groups[0]
    assert (group["grokfast_alpha"], group["grokfast_lamb"], group["grokfast_init"]) == (0.9, 5.0, "zero")
    assert len(opt._optimizer_step_post_hooks) == 1
    plain = build_optimizer(to_config(compose(["optimizer=adamw"]))[0].optimizer, [p])
    assert type(plain) is torch.optim.AdamW and not plain._optimizer_step_post_hooks  # off by default


def test_a_run_with_every_intervention_trains_and_resumes_as_if_uninterrupted(run, tmp_path):
    """Grokfast's average is in the checkpoint, the norm target is the initial norm on resume too
    (not the resumed weights'), each replica keeps its own norm, and the output scale is applied."""
    on = ["optimizer.grokfast=true", "optimizer.norm_constraint=0.5", "model.output_scale=2", "seeds=[0,1]"]
    args = [*TINY, *on, "cpu_kernel=torch", "checkpoint_every=2"]
    full, full_dir = run([*args, "epochs=6"])
    out = tmp_path / "cut"
    run([*args, "epochs=4"], out)
    (out / "summary.json").unlink()  # as if stopped right after its last checkpoint
    resumed, _ = run([*args, "epochs=6"], out)
    assert full["status"] == resumed["status"] == "completed"
    state, cut = load_checkpoint(full_dir / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert all(torch.equal(state["model"][k], cut["model"][k]) for k in state["model"])
    assert (full_dir / "metrics.csv").read_text().splitlines()[-2:] == (out / "metrics.csv").read_text().splitlines()[
        -2:
    ]
    assert GROKFAST_EMA in state["optimizer"]["state"][0]
    cfg, _ = to_config(compose([*args]))
    init = build_model(cfg.model, build_dataset(cfg.dataset), [0, 1])
    final = [state["model"][k] for k, _ in init.named_parameters()]
    norms = per_replica_norm(final)
    torch.testing.assert_close(norms, 0.5 * per_replica_norm([p.detach() for p in init.parameters()]))
    assert norms[0] != norms[1]


def test_the_native_step_trains_with_grokfast_and_the_norm_constraint(run):
    native = pytest.importorskip("grokking.native").build()
    if isinstance(native, Exception):
        pytest.skip(f"no C++ kernels here: {native}")
    summary, _ = run([*TINY, "optimizer.grokfast=true", "optimizer.norm_constraint=1", "epochs=4"])
    assert summary["status"] == "completed" and summary["training_step"] == "native"


def test_an_output_scale_of_2_trains_exactly_as_a_temperature_of_one_half(run):
    """α·net(x) is net(x) / T with T = 1/α: for a power of 2 the two roundings are the same, so the
    runs agree bit for bit (metrics, diagnostics included); the weights start at the default init."""
    a, a_dir = run([*TINY, "epochs=4", "cpu_kernel=torch", "model.output_scale=2"])
    b, b_dir = run([*TINY, "epochs=4", "cpu_kernel=torch", "loss.temperature=0.5"])
    assert (a_dir / "metrics.csv").read_text() == (b_dir / "metrics.csv").read_text()
