import io

import torch

from grokking.config import OptimizerConfig
from grokking.optim import NormalizedGrad, OrthoGrad, build_optimizer, orthogonal_component


def flat(t, r):
    return t[r].flatten()


def test_orthogonal_component_is_orthogonal_per_replica_and_keeps_norm():
    theta = torch.randn(3, 20, 30, dtype=torch.float64)
    g = torch.randn(3, 20, 30, dtype=torch.float64) + 0.5 * theta
    g_perp = orthogonal_component(theta, g)
    for r in range(3):
        assert abs(flat(theta, r) @ flat(g_perp, r)) < 1e-9 * flat(theta, r).norm() * flat(g, r).norm()
        torch.testing.assert_close(flat(g_perp, r).norm(), flat(g, r).norm())
        assert flat(g, r) @ flat(g_perp, r) > 0  # -g⊥ is a descent direction


def test_orthogonal_component_without_rescale_is_the_plain_projection():
    theta = torch.randn(1, 10, dtype=torch.float64)
    g = torch.randn(1, 10, dtype=torch.float64)
    expected = g - (theta @ g.T) / (theta @ theta.T) * theta
    torch.testing.assert_close(orthogonal_component(theta, g, rescale=False), expected)


def test_perpgrad_step_descends_on_a_quadratic():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(1, 50, dtype=torch.float64))
    target = torch.randn(1, 50, dtype=torch.float64)
    opt = build_optimizer(OptimizerConfig(base="sgd", orthogonal=True, lr=1e-3), [w])
    loss = lambda: ((w - target) ** 2).sum()  # noqa: E731
    before = loss().item()
    opt.zero_grad()
    loss().backward()
    opt.step()
    assert loss().item() < before


def test_hyperparameters_reach_the_stepping_optimizer():
    p = [torch.nn.Parameter(torch.randn(1, 3))]
    cfg = OptimizerConfig(base="adamw", orthogonal=True, lr=0.02, betas=[0.8, 0.95], eps=1e-20, weight_decay=0.3)
    opt = build_optimizer(cfg, p)
    assert isinstance(opt, OrthoGrad) and opt.param_groups[0]["per_replica"]
    group = opt.base.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (0.02, (0.8, 0.95), 1e-20, 0.3)
    sgd = build_optimizer(OptimizerConfig(base="sgd", orthogonal=True, lr=10, momentum=0.8, weight_decay=0.1), p)
    group = sgd.base.param_groups[0]
    assert isinstance(sgd.base, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (10, 0.8, 0.1)


def test_state_dict_round_trip_keeps_adam_moments():
    def make():
        torch.manual_seed(1)
        p = torch.nn.Parameter(torch.randn(2, 4, 4))
        return p, build_optimizer(OptimizerConfig(base="adamw", orthogonal=True, lr=0.01), [p])

    p, opt = make()
    for _ in range(3):
        opt.zero_grad()
        (p**3).sum().backward()
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # a real save/load round trip
    buffer.seek(0)
    state = torch.load(buffer)
    assert "exp_avg" in state["state"][0] and "exp_avg_sq" in state["state"][0]
    p2, opt2 = make()
    p2.data.copy_(p.data)
    opt2.load_state_dict(state)
    for o in (opt, opt2):
        o.zero_grad()
    (p**3).sum().backward()
    (p2**3).sum().backward()
    opt.step()
    opt2.step()
    torch.testing.assert_close(p, p2, rtol=0, atol=0)


def test_normalized_step_has_unit_gradient_norm_per_replica():
    w = torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    opt = build_optimizer(OptimizerConfig(base="sgd", lr=1.0, normalize_grad=True), [w, b])
    scale = torch.tensor([1.0, 10.0, 1e-3], dtype=torch.float64)[:, None]
    (w * scale * torch.arange(4.0)).sum().backward()
    (b * scale * torch.ones(2)).sum().backward()
    opt.step()
    step_norm = (w.pow(2).sum(1) + b.pow(2).sum(1)).sqrt()
    torch.testing.assert_close(step_norm, torch.ones(3, dtype=torch.float64))


def test_normalization_survives_tiny_and_zero_gradients():
    from grokking.optim import per_replica_norm

    g = torch.full((2, 10), 1e-170, dtype=torch.float64)
    g[1] = 0
    norm = per_replica_norm([g])
    torch.testing.assert_close(norm[0], torch.tensor(1e-170 * 10**0.5, dtype=torch.float64))
    assert norm[1] == 0
    w = torch.nn.Parameter(torch.ones(2, 10, dtype=torch.float64))
    opt = build_optimizer(OptimizerConfig(base="sgd", lr=1.0, normalize_grad=True), [w])
    w.grad = g.clone()
    opt.step()
    assert torch.isfinite(w).all() and (w[1] == 1).all()
    torch.testing.assert_close(w[0], torch.full((10,), 1 - 10**-0.5, dtype=torch.float64))


def test_orthogonal_rescale_survives_tiny_gradients():
    theta = torch.randn(1, 20, dtype=torch.float64)
    g = torch.randn(1, 20, dtype=torch.float64)
    tiny = orthogonal_component(theta, 1e-170 * g)
    torch.testing.assert_close(tiny / 1e-170, orthogonal_component(theta, g))


def test_normalize_grad_builds_normalized_grad_with_or_without_projection():
    p = [torch.nn.Parameter(torch.randn(2, 3))]
    plain = build_optimizer(OptimizerConfig(base="sgd", lr=1.0, normalize_grad=True), p)
    both = build_optimizer(OptimizerConfig(base="sgd", orthogonal=True, lr=1.0, normalize_grad=True), p)
    assert isinstance(plain, NormalizedGrad) and not plain.param_groups[0]["orthogonal"]
    assert isinstance(both, NormalizedGrad) and both.param_groups[0]["orthogonal"]
    assert type(build_optimizer(OptimizerConfig(base="sgd", lr=1.0), p)) is torch.optim.SGD
