"""The public API (``import grokking``): StableMax cross-entropy, ⊥Grad as a torch optimizer, and the
two diagnostics, against their definitions, torch's conventions and the paper's released code."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from official import load

from grokking import (
    OrthoGrad,
    StableMaxCrossEntropyLoss,
    nlm_alignment,
    softmax_collapse_fraction,
    stablemax,
    stablemax_cross_entropy,
)

README = Path(__file__).resolve().parent.parent / "README.md"
REDUCTIONS = ("mean", "sum", "none")


def reference(input, target, reduction, ignore_index=-100):
    """F.cross_entropy of log StableMax: the definition, through torch's own conventions."""
    return F.nll_loss(torch.log(stablemax(input, dim=1)), target, reduction=reduction, ignore_index=ignore_index)


# ---- StableMax cross-entropy -------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(16, 7), (4, 7, 5), (3, 7, 2, 3)], ids=["2d", "3d", "4d"])
def test_stablemax_cross_entropy_is_cross_entropy_of_log_stablemax(reduction, shape):
    g = torch.Generator().manual_seed(0)
    z = 5 * torch.randn(shape, dtype=torch.float64, generator=g)
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    y.view(-1)[::3] = -100  # every third target ignored
    expected = reference(z, y, reduction)
    torch.testing.assert_close(stablemax_cross_entropy(z, y, reduction=reduction), expected)
    torch.testing.assert_close(StableMaxCrossEntropyLoss(reduction=reduction)(z, y), expected)


def test_ignore_index_and_unbatched_input_follow_cross_entropy():
    z = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 2, 1])
    for ignore in (2, 0):
        kept = y != ignore
        per_target = stablemax_cross_entropy(z, y, reduction="none", ignore_index=ignore)
        assert (per_target[~kept] == 0).all()
        mean = stablemax_cross_entropy(z, y, ignore_index=ignore)
        torch.testing.assert_close(mean, per_target[kept].mean())
        torch.testing.assert_close(mean, reference(z, y, "mean", ignore))
    everything_ignored = stablemax_cross_entropy(z, torch.full((6,), -100))
    assert torch.isnan(everything_ignored)  # 0 / 0, as F.cross_entropy gives
    torch.testing.assert_close(stablemax_cross_entropy(z[0], y[0]), stablemax_cross_entropy(z[:1], y[:1]))


def test_dtype_sets_the_computation_and_the_result_keeps_the_input_dtype():
    z = torch.tensor([[40.0, 0.0, -3.0]])  # float32
    y = torch.tensor([1])
    for dtype in (None, torch.float16, torch.bfloat16, torch.float64):
        out = stablemax_cross_entropy(z, y, dtype=dtype)
        assert out.dtype == torch.float32
        expected = -torch.log(stablemax(z.to(dtype or z.dtype))[0, 1]).float()
        torch.testing.assert_close(
            out, expected, rtol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6, atol=0
        )
    z.requires_grad_(True)
    stablemax_cross_entropy(z, y, dtype=torch.float64).backward()
    assert z.grad.dtype == torch.float32


def test_gradients_pass_gradcheck_in_float64():
    g = torch.Generator().manual_seed(1)
    z = (3 * torch.randn(5, 6, 2, dtype=torch.float64, generator=g)).requires_grad_(True)
    y = torch.randint(0, 6, (5, 2), generator=g)
    y[0, 0] = -100
    for reduction in REDUCTIONS:
        assert torch.autograd.gradcheck(lambda z, r=reduction: stablemax_cross_entropy(z, y, reduction=r), (z,))


def test_bad_reduction_and_float_targets_are_refused():
    with pytest.raises(ValueError, match="reduction='avg'"):
        stablemax_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), reduction="avg")
    with pytest.raises(ValueError):
        StableMaxCrossEntropyLoss(reduction="avg")
    with pytest.raises(TypeError):
        stablemax_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stablemax_cross_entropy_equals_the_official_one(dtype):
    official = load("utils")
    g = torch.Generator().manual_seed(2)
    z = 10 * torch.randn(64, 113, generator=g)
    y = torch.randint(0, 113, (64,), generator=g)
    ours = stablemax_cross_entropy(z, y, reduction="none", dtype=dtype)
    theirs = official.stablemax_cross_entropy(z, y, reduction="none", dtype=dtype).squeeze(-1).float()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(
        stablemax_cross_entropy(z, y, dtype=dtype), official.stablemax_cross_entropy(z, y, dtype=dtype).float()
    )


# ---- OrthoGrad -----------------------------------------------------------------------------------


def model_and_data(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)).to(dtype)
    x = torch.randn(32, 8, dtype=dtype)
    y = torch.randint(0, 5, (32,))
    return model, x, y


def loss_of(model, x, y):
    return stablemax_cross_entropy(model(x), y)


def test_orthograd_is_a_torch_optimizer_and_projects_each_tensor():
    model, x, y = model_and_data()
    captured = {}

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            captured.update({p: p.grad.clone() for group in self.param_groups for p in group["params"]})
            return super().step(closure)

    opt = OrthoGrad(model.parameters(), base=Recording, lr=0.1)
    assert isinstance(opt, torch.optim.Optimizer)
    loss_of(model, x, y).backward()
    raw = {p: p.grad.clone() for p in model.parameters()}
    before = {p: p.detach().clone() for p in model.parameters()}
    opt.step()
    for p, g in raw.items():
        g_perp = captured[p]
        assert abs(torch.dot(before[p].flatten(), g_perp.flatten())) < 1e-10 * before[p].norm() * g.norm()
        torch.testing.assert_close(g_perp.norm(), g.norm())  # rescaled to the original norm
        assert torch.dot(g.flatten(), g_perp.flatten()) > 0  # -g⊥ is a descent direction
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_orthograd_without_rescale_is_the_plain_projection_and_descends():
    model, x, y = model_and_data()
    opt = OrthoGrad(model.parameters(), base=torch.optim.SGD, rescale=False, lr=1e-2)
    before = loss_of(model, x, y).item()
    loss_of(model, x, y).backward()
    w = model[0].weight.detach().clone().flatten()
    g = model[0].weight.grad.clone().flatten()
    opt.step()
    expected = w - 1e-2 * (g - (w @ g) / (w @ w) * w)
    torch.testing.assert_close(model[0].weight.detach().flatten(), expected)
    assert loss_of(model, x, y).item() < before


@pytest.mark.parametrize(
    "base,hyper",
    [
        (torch.optim.AdamW, {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-10, "weight_decay": 0.1}),
        (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ],
    ids=["adamw", "sgd"],
)
def test_orthograd_steps_equal_the_official_orthograd(base, hyper):
    official = load("orthograd")
    ours_model, x, y = model_and_data()
    their_model = copy.deepcopy(ours_model)
    ours = OrthoGrad(ours_model.parameters(), base=base, **hyper)
    # the fixed official wrapper builds its base from its param groups: hyperparameters go there
    theirs = official.OrthoGrad([{"params": list(their_model.parameters()), **hyper}], base_optimizer_cls=base)
    for _ in range(5):
        for model, opt in ((ours_model, ours), (their_model, theirs)):
            opt.zero_grad()
            loss_of(model, x, y).backward()
            opt.step()
    for a, b in zip(ours_model.parameters(), their_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_base_hyperparameters_reach_the_base_per_group():
    model, x, y = model_and_data()
    w, b = [model[0].weight, model[2].weight], [model[0].bias, model[2].bias]
    opt = OrthoGrad(
        [{"params": w}, {"params": b, "lr": 0.5, "betas": (0.5, 0.6), "rescale": False}],
        base=torch.optim.AdamW,
        lr=0.02,
        betas=(0.8, 0.95),
        eps=1e-20,
        weight_decay=0.3,
    )
    base = opt.base.param_groups
    assert isinstance(opt.base, torch.optim.AdamW) and base is opt.param_groups
    assert (base[0]["lr"], base[0]["betas"], base[0]["eps"], base[0]["weight_decay"], base[0]["rescale"]) == (
        0.02,
        (0.8, 0.95),
        1e-20,
        0.3,
        True,
    )
    assert (base[1]["lr"], base[1]["betas"], base[1]["eps"], base[1]["rescale"]) == (0.5, (0.5, 0.6), 1e-20, False)
    sgd = OrthoGrad(model.parameters(), base=torch.optim.SGD, lr=10, momentum=0.8, weight_decay=0.1, nesterov=True)
    group = sgd.base.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (10, 0.8, 0.1, True)
    extra = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt.add_param_group({"params": [extra], "weight_decay": 0.0})
    assert opt.base.param_groups[2]["betas"] == (0.8, 0.95) and opt.param_groups[2]["weight_decay"] == 0.0
    (loss_of(model, x, y) + extra.sum()).backward()
    opt.step()
    assert len(opt.base.state[extra]) == 3  # the new group's parameter stepped through the base


def test_orthograd_runs_one_cycle_lr_and_closures():
    model, x, y = model_and_data()
    opt = OrthoGrad(model.parameters(), base=torch.optim.AdamW, lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    lrs, betas = [], []
    for _ in range(10):

        def closure():
            opt.zero_grad()
            loss = loss_of(model, x, y)
            loss.backward()
            return loss

        loss = opt.step(closure)
        assert torch.is_tensor(loss) and torch.isfinite(loss)
        lrs.append(opt.base.param_groups[0]["lr"])
        betas.append(opt.base.param_groups[0]["betas"][0])
        sched.step()
    assert max(lrs) == pytest.approx(0.05, rel=0.05) and lrs[0] < 0.01 and lrs[-1] < lrs[3]
    assert len(set(betas)) > 1  # the momentum cycles too


def test_state_dict_round_trip_continues_bit_identically():
    def make():
        model, x, y = model_and_data(seed=3, dtype=torch.float32)
        return model, x, y, OrthoGrad(model.parameters(), base=torch.optim.AdamW, lr=0.01, eps=1e-25)

    def steps(model, x, y, opt, n):
        for _ in range(n):
            opt.zero_grad()
            loss_of(model, x, y).backward()
            opt.step()

    model, x, y, opt = make()
    steps(model, x, y, opt, 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    assert saved["opt"]["param_groups"][0]["rescale"] is True and "exp_avg" in saved["opt"]["state"][0]
    model2, _, _, opt2 = make()
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups is opt2.base.param_groups and opt2.state is opt2.base.state
    steps(model, x, y, opt, 4)
    steps(model2, x, y, opt2, 4)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    clone = copy.deepcopy(opt2)
    assert clone.param_groups is clone.base.param_groups


def test_a_base_optimizer_state_dict_loads_into_orthograd():
    model, x, y = model_and_data()
    plain = torch.optim.AdamW(model.parameters(), lr=0.01)
    loss_of(model, x, y).backward()
    plain.step()
    opt = OrthoGrad(model.parameters(), base=torch.optim.AdamW, rescale=False, lr=0.5)
    opt.load_state_dict(plain.state_dict())
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["rescale"] is False
    assert opt.state[model[0].weight]["step"] == 1


def test_a_trainer_checkpoint_resumes_through_orthograd(run, tmp_path):
    """The trainer's ⊥AdamW checkpoint, loaded into a hand-built OrthoGrad around torch's AdamW,
    continues as the trainer itself continues the run."""
    tiny = ["dataset.modulus=23", "model.width=32", "log_every=1", "cpu_kernel=torch", "checkpoint_every=3"]
    run([*tiny, "epochs=3"], tmp_path / "part")
    ckpt = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    summary, out = run([*tiny, "epochs=5"], tmp_path / "full")

    from grokking.cli import compose
    from grokking.data import build_dataset
    from grokking.losses import softmax_cross_entropy
    from grokking.models import build_model
    from grokking.train import to_config

    cfg = to_config(compose(["device=cpu", *tiny]))[0]
    data = build_dataset(cfg.dataset).to(torch.device("cpu"), torch.float32)
    model = build_model(cfg.model, data, [0])
    model.load_state_dict(ckpt["model"])
    o = cfg.optimizer
    opt = OrthoGrad(model.parameters(), betas=tuple(o.betas), eps=o.eps, lr=o.lr, per_replica=True)
    opt.load_state_dict(ckpt["optimizer"])
    for _ in range(2):
        opt.zero_grad()
        loss = softmax_cross_entropy(model(data.train_x), data.train_y, torch.float32).mean()
        loss.backward()
        opt.step()
    final = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, final[name], rtol=1e-5, atol=1e-7)


# ---- diagnostics ---------------------------------------------------------------------------------


def test_softmax_collapse_fraction_on_crafted_logits():
    # one row per gap to the runner-up; a row collapses once exp(-gap) is below half an ulp of 1:
    # 2^-8 in bfloat16, 2^-11 in float16, 2^-24 in float32, 2^-53 in float64
    gaps = torch.tensor([3.0, 6.0, 10.0, 20.0, 40.0], dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(gaps), gaps], 1)
    assert softmax_collapse_fraction(logits, torch.bfloat16).item() == 0.8  # from gap 6 (e^-6 = 2.5e-3)
    assert softmax_collapse_fraction(logits, "float16").item() == 0.6  # from gap 10
    assert softmax_collapse_fraction(logits, torch.float32).item() == 0.4  # from gap 20
    assert softmax_collapse_fraction(logits, torch.float64).item() == 0.2  # gap 40 only
    assert softmax_collapse_fraction(logits[:4].reshape(2, 2, 2), torch.bfloat16, dim=-1).item() == 0.75


def test_nlm_alignment_is_the_cosine_of_weights_and_minus_gradient():
    model, x, y = model_and_data()
    assert nlm_alignment(model.named_parameters()) == {}
    loss_of(model, x, y).backward()
    named = nlm_alignment(model.named_parameters())
    assert list(named) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    w, g = model[0].weight.detach().flatten(), model[0].weight.grad.flatten()
    assert named["0.weight"] == pytest.approx((w @ -g / (w.norm() * g.norm())).item(), abs=1e-12)
    assert list(nlm_alignment(model.parameters())) == ["0", "1", "2", "3"]
    model[2].weight.grad = 2 * model[2].weight.detach()  # a gradient along θ: fully aligned against it
    assert nlm_alignment(model.named_parameters())["2.weight"] == pytest.approx(-1.0)


# ---- the README's example ------------------------------------------------------------------------


def test_readme_example_runs_as_written():
    text = README.read_text()
    section = text.split("## Use StableMax and ⊥Grad in your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
