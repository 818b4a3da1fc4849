"""OrthoGrad around any base: closure-driven bases, optimizer instances, per-replica parameters,
``load_state_dict`` checks and the gradient parallel to θ."""

from __future__ import annotations

import pytest
import torch

from grokking import OrthoGrad, stablemax_cross_entropy
from grokking.optim import orthogonal_component


def model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)).double()
    x = torch.randn(32, 8, dtype=torch.float64)
    y = torch.randint(0, 5, (32,))
    return model, x, y


def backward(model, x, y):
    loss = stablemax_cross_entropy(model(x), y)
    loss.backward()
    return loss


# ---- closure-driven bases ------------------------------------------------------------------------


def test_lbfgs_steps_with_projected_gradients_at_every_evaluation():
    model, x, y = model_and_data()
    seen = []

    class Recording(torch.optim.LBFGS):
        def _gather_flat_grad(self):
            flat = super()._gather_flat_grad()
            seen.append([p.grad.clone() for p in self._params])
            return flat

    opt = OrthoGrad(model.parameters(), base=Recording, lr=0.1, max_iter=4)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        opt.zero_grad()
        return backward(model, x, y)

    first = opt.step(closure).item()
    assert len(seen) > 1  # LBFGS evaluated the closure several times
    for grads in seen[:1]:  # the gradients it saw at θ before its first move are ⊥ θ
        for p0, g in zip(before, grads):
            assert abs(torch.dot(p0.flatten(), g.flatten())) < 1e-10 * p0.norm() * g.norm()
    for _ in range(5):
        opt.step(closure)
    assert stablemax_cross_entropy(model(x), y).item() < first


def test_a_base_needing_a_closure_says_so_at_step():
    model, x, y = model_and_data()
    opt = OrthoGrad(model.parameters(), base=torch.optim.LBFGS)
    backward(model, x, y)
    with pytest.raises(TypeError, match=r"LBFGS evaluates the loss itself: call step\(closure\)"):
        opt.step()


# ---- an optimizer instance as base ---------------------------------------------------------------


def test_an_optimizer_instance_as_base_is_used_as_it_is():
    model, x, y = model_and_data()
    twin = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    adamw = torch.optim.AdamW(model.parameters(), lr=0.02, betas=(0.8, 0.9))
    opt = OrthoGrad(model.parameters(), base=adamw)
    reference = OrthoGrad(twin, base=torch.optim.AdamW, lr=0.02, betas=(0.8, 0.9))
    assert opt.base is adamw and opt.param_groups is adamw.param_groups and opt.param_groups[0]["rescale"]
    for _ in range(3):
        for o in (opt, reference):
            o.zero_grad()
        backward(model, x, y)
        for p, t in zip(model.parameters(), twin):
            t.grad = p.grad.clone()
        opt.step()
        reference.step()
    for p, t in zip(model.parameters(), twin):
        assert torch.equal(p, t)


def test_a_wrong_instance_base_is_refused_with_one_line():
    model, _, _ = model_and_data()
    adamw = torch.optim.AdamW(model.parameters(), lr=0.02)
    with pytest.raises(TypeError, match="lr would have no effect"):
        OrthoGrad(model.parameters(), base=adamw, lr=0.1)
    with pytest.raises(ValueError, match="other parameter tensors"):
        OrthoGrad(list(model.parameters())[:2], base=adamw)
    with pytest.raises(TypeError, match="not an optimizer class"):
        OrthoGrad(model.parameters(), base="adamw")


# ---- per_replica ---------------------------------------------------------------------------------


def test_per_replica_refuses_parameters_without_a_replica_dimension():
    model, _, _ = model_and_data()
    with pytest.raises(ValueError, match=r"shape \(16,\) has none"):
        OrthoGrad(model.parameters(), per_replica=True)
    weights = [model[0].weight, model[2].weight]  # (16, 8) and (5, 16): no common replica count
    with pytest.raises(ValueError, match=r"\(16, 8\) and \(5, 16\) disagree on the replica count"):
        OrthoGrad(weights, per_replica=True)
    batched = [torch.nn.Parameter(torch.randn(3, 4, 5)), torch.nn.Parameter(torch.randn(3, 1, 5))]
    opt = OrthoGrad(batched, per_replica=True, lr=0.1)
    with pytest.raises(ValueError, match=r"shape \(3,\) has none"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(3))]})
    with pytest.raises(ValueError, match="disagree"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(4, 2))]})
    opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(7))], "per_replica": False})  # its own choice
    assert len(opt.param_groups) == 2


# ---- load_state_dict -----------------------------------------------------------------------------


def stepped(opt, model, x, y):
    opt.zero_grad()
    backward(model, x, y)
    opt.step()
    return opt


def test_load_state_dict_refuses_another_optimizer_state_at_load():
    model, x, y = model_and_data()
    sgd = stepped(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), model, x, y)
    opt = OrthoGrad(model.parameters(), base=torch.optim.AdamW, lr=0.01)
    with pytest.raises(ValueError, match="dampening, momentum, nesterov, which AdamW does not have"):
        opt.load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="2 parameter groups, this optimizer 1"):
        state = opt.state_dict()
        opt.load_state_dict({**state, "param_groups": state["param_groups"] * 2})
    small, _, _ = model_and_data()
    fewer = OrthoGrad(list(small.parameters())[:2], base=torch.optim.AdamW, lr=0.01)
    with pytest.raises(ValueError, match="group 0 of the state has 2 parameters, this optimizer's 4"):
        opt.load_state_dict(fewer.state_dict())
    stepped(opt, model, x, y)
    twin = OrthoGrad(model.parameters(), base=torch.optim.AdamW, lr=0.01)
    twin.load_state_dict(opt.state_dict())  # the same optimizer loads
    assert twin.state[model[0].weight]["exp_avg"].shape == (16, 8)


def test_load_state_dict_refuses_the_state_of_another_model():
    model, x, y = model_and_data()
    other = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5)).double()
    saved = stepped(
        OrthoGrad(other.parameters(), base=torch.optim.AdamW, lr=0.01), other, torch.randn(4, 16).double(), y[:4]
    )
    opt = OrthoGrad(model.parameters(), base=torch.optim.AdamW, lr=0.01)
    with pytest.raises(ValueError, match=r"'exp_avg' of shape \(8, 16\) does not fit a parameter of shape \(16, 8\)"):
        opt.load_state_dict(saved.state_dict())
    stepped(opt, model, x, y)
    sgd_state = stepped(OrthoGrad(model.parameters(), base=torch.optim.SGD, lr=0.1, momentum=0.9), model, x, y)
    stripped = sgd_state.state_dict()
    for group in stripped["param_groups"]:  # hyperparameters renamed away: only the per-parameter state differs
        for key in ("momentum", "dampening", "nesterov"):
            group.pop(key)
    with pytest.raises(ValueError, match="holds momentum_buffer; AdamW keeps exp_avg, exp_avg_sq, step"):
        opt.load_state_dict(stripped)


# ---- a gradient parallel to θ --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rescale", [True, False])
def test_parallel_gradient_rescale_is_the_default_and_zero_is_selectable(dtype, rescale):
    theta = torch.randn(2, 1000, dtype=dtype)
    g = torch.stack([-2.5 * theta[0], torch.randn(1000, dtype=dtype)])  # replica 0 parallel, 1 generic
    default = orthogonal_component(theta, g, rescale)
    zero = orthogonal_component(theta, g, rescale, parallel="zero")
    assert torch.equal(default[1], zero[1])  # a generic gradient: the same either way
    assert torch.equal(zero[0], torch.zeros(1000, dtype=dtype))
    if rescale:  # the official behaviour: rounding residue rescaled to a full-norm step
        torch.testing.assert_close(default[0].norm(), g[0].norm())


def test_orthograd_parallel_option_reaches_the_step():
    p = torch.nn.Parameter(torch.randn(50, dtype=torch.float64))
    before = p.detach().clone()
    opt = OrthoGrad([p], base=torch.optim.SGD, lr=0.1, parallel="zero")
    p.grad = 3 * p.detach().clone()
    opt.step()
    assert torch.equal(p.detach(), before)  # no step
    default = OrthoGrad([p], base=torch.optim.SGD, lr=0.1)
    assert default.param_groups[0]["parallel"] == "rescale"
    p.grad = 3 * p.detach().clone()
    default.step()
    assert not torch.equal(p.detach(), before)  # the official full-norm step
    with pytest.raises(ValueError, match="parallel='none' is not valid; choose one of: rescale, zero"):
        OrthoGrad([p], parallel="none")
