"""``stablemax_cross_entropy`` as a drop-in for ``F.cross_entropy``: every autograd order, the
``weight`` and ``label_smoothing`` keywords, and autocast, each against torch's own cross-entropy
applied to StableMax log-probabilities."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from grokking import StableMaxCrossEntropyLoss, stablemax, stablemax_cross_entropy
from grokking.fused import FUSED, StableMaxNLL
from grokking.losses import LOSSES

REDUCTIONS = ("mean", "sum", "none")


def log_probs(z: torch.Tensor) -> torch.Tensor:
    """log StableMax along the class dimension (1, or 0 for unbatched input), by plain autograd."""
    return torch.log(stablemax(z, dim=1 if z.dim() > 1 else 0))


def reference(z, y, **kw):
    """torch's cross_entropy of StableMax log-probabilities: log_softmax leaves normalized
    log-probabilities unchanged (to rounding), so this is nll_loss with torch's weight, ignore_index,
    label smoothing and reduction semantics."""
    return F.cross_entropy(log_probs(z), y, **kw)


def data(shape, seed=0, ignored=True):
    g = torch.Generator().manual_seed(seed)
    z = 4 * torch.randn(shape, dtype=torch.float64, generator=g)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    y = torch.randint(0, classes, target_shape, generator=g)
    if ignored and y.dim():
        y.view(-1)[::4] = -100
    w = torch.rand(classes, dtype=torch.float64, generator=g) + 0.1
    return z, y, w


# ---- higher autograd orders ----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2)], ids=["2d", "3d"])
def test_gradgradcheck_in_float64(reduction, shape):
    z, y, w = data(shape, seed=1)
    z.requires_grad_(True)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.2, "weight": w}):
        fn = lambda z, kw=kw: stablemax_cross_entropy(z, y, reduction=reduction, **kw)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (z,))
        assert torch.autograd.gradgradcheck(fn, (z,))


def test_third_order_matches_the_definition():
    z, y, _ = data((4, 3), seed=2, ignored=False)
    z.requires_grad_(True)

    def third(loss_fn):
        (g,) = torch.autograd.grad(loss_fn(z), z, create_graph=True)
        (h,) = torch.autograd.grad(g.square().sum(), z, create_graph=True)
        return torch.autograd.grad(h.sum(), z)[0]

    torch.testing.assert_close(third(lambda z: stablemax_cross_entropy(z, y)), third(lambda z: reference(z, y)))


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 12), torch.nn.Tanh(), torch.nn.Linear(12, 5)
    ).double()


def penalty_grads(model, loss_fn, x, y):
    """Gradients of loss + |∇θ loss|² (a gradient penalty) with respect to every parameter."""
    params = list(model.parameters())
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    total = loss + sum(g.square().sum() for g in grads)
    return torch.autograd.grad(total, params, allow_unused=True)


@pytest.mark.parametrize("make", [mlp, lambda: torch.nn.Linear(6, 5).double()], ids=["mlp", "one-linear"])
def test_gradient_penalty_equals_the_reference(make):
    torch.manual_seed(3)
    x = 3 * torch.randn(32, 6, dtype=torch.float64)
    y = torch.randint(0, 5, (32,))
    model = make()
    ours = penalty_grads(model, stablemax_cross_entropy, x, y)
    theirs = penalty_grads(model, reference, x, y)
    for a, b in zip(ours, theirs):
        assert a is not None  # the last bias too: its gradient enters ∇θ loss through z
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    last_bias = ours[-1]
    assert last_bias.abs().max() > 1e-6


def test_a_penalty_alone_through_one_linear_layer_has_a_gradient():
    """The penalty without the loss: the first-order gradient must itself carry a graph (it raised
    "element 0 of tensors does not require grad" when the backward was not differentiable)."""
    torch.manual_seed(4)
    x = torch.randn(16, 6, dtype=torch.float64)
    y = torch.randint(0, 5, (16,))
    layer = torch.nn.Linear(6, 5).double()

    def penalty_grad(loss_fn):
        (g,) = torch.autograd.grad(loss_fn(layer(x), y), layer.weight, create_graph=True)
        return torch.autograd.grad(g.square().sum(), list(layer.parameters()))

    for a, b in zip(penalty_grad(stablemax_cross_entropy), penalty_grad(reference)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_equals_the_reference():
    z, y, w = data((6, 5), seed=4)
    v = torch.randn(6, 5, dtype=torch.float64)

    def hvp(loss_fn):
        zz = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(zz), zz, create_graph=True)
        return torch.autograd.grad(g, zz, v)[0]

    ours = hvp(lambda z: stablemax_cross_entropy(z, y, weight=w))
    torch.testing.assert_close(ours, hvp(lambda z: reference(z, y, weight=w)))
    assert ours.abs().max() > 1e-3


@pytest.mark.parametrize("name", ["softmax", "stablemax"])
def test_the_training_nodes_are_exact_at_second_order(name):
    """The fused nodes that training uses: a gradient penalty through them equals the definition's."""
    g = torch.Generator().manual_seed(9)
    z = 3 * torch.randn(2, 6, 4, dtype=torch.float64, generator=g)  # (replicas, samples, classes)
    y = torch.randint(0, 4, (6,), generator=g)

    def penalty_grad(loss_fn):
        zz = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(zz, y, torch.float64).sum(), zz, create_graph=True)
        return torch.autograd.grad(g.square().sum(), zz)[0]

    ours = penalty_grad(FUSED[name])
    torch.testing.assert_close(ours, penalty_grad(LOSSES[name].fn), rtol=1e-10, atol=1e-12)
    assert ours.abs().max() > 1e-4
    z.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda z: FUSED[name](z, y, torch.float64), (z,))


# ---- weight and label_smoothing ------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(12, 5), (4, 5, 3), (3, 5, 2, 2), (5,)], ids=["2d", "3d", "4d", "unbatched"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weight"])
def test_weight_and_label_smoothing_follow_cross_entropy(reduction, shape, smoothing, weighted):
    z, y, w = data(shape, seed=5)
    kw = {"reduction": reduction, "label_smoothing": smoothing, "weight": w if weighted else None}
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    ours, theirs = stablemax_cross_entropy(z1, y, **kw), reference(z2, y, **kw)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(StableMaxCrossEntropyLoss(**kw)(z, y), theirs, rtol=1e-12, atol=1e-12)
    g = torch.rand_like(ours)
    ours.backward(g)
    theirs.backward(g)
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("eager", [True, False], ids=["small", "large"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_both_first_order_backward_passes_equal_the_reference(eager, reduction, monkeypatch):
    """Small inputs form the gradient in the forward pass, large ones in the backward pass."""
    monkeypatch.setattr(StableMaxNLL, "EAGER", 1 << 30 if eager else 0)
    for shape, weighted in (((12, 5), False), ((4, 5, 3), True), ((5,), False)):
        z, y, w = data(shape, seed=10)
        kw = {"reduction": reduction, "weight": w if weighted else None}
        z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
        ours, theirs = stablemax_cross_entropy(z1, y, **kw), reference(z2, y, **kw)
        g = torch.rand_like(ours)
        ours.backward(g, retain_graph=True)
        theirs.backward(g)
        torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-12)
        ours.backward(g)  # a retained graph runs its backward again: the same gradient
        torch.testing.assert_close(z1.grad, 2 * z2.grad, rtol=1e-10, atol=1e-12)


def test_weighted_mean_divides_by_the_weight_of_the_kept_targets():
    z = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    w = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    per = -log_probs(z).gather(1, y[:, None]).squeeze(1)
    expected = (per * w).sum() / w.sum()
    torch.testing.assert_close(stablemax_cross_entropy(z, y, weight=w), expected)
    y_ignored = torch.tensor([0, 1, 7])  # a class index as ignore_index, out of range of C
    expected = (per[:2] * w[:2]).sum() / w[:2].sum()
    torch.testing.assert_close(stablemax_cross_entropy(z, y_ignored, ignore_index=7, weight=w), expected)
    # a class of weight 0 adds nothing to the nll, but its target still gets the smoothing term
    w0 = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    for reduction in REDUCTIONS:
        kw = {"weight": w0, "label_smoothing": 0.5, "reduction": reduction}
        torch.testing.assert_close(stablemax_cross_entropy(z, y, **kw), reference(z, y, **kw))


def test_ignore_index_among_the_classes_with_smoothing_and_weight():
    z, y, w = data((10, 4), seed=6, ignored=False)
    for reduction in REDUCTIONS:
        kw = {"weight": w, "label_smoothing": 0.1, "reduction": reduction, "ignore_index": 2}
        torch.testing.assert_close(stablemax_cross_entropy(z, y, **kw), reference(z, y, **kw))


def test_bad_keywords_are_refused_with_one_line():
    z, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"weight of shape \(4,\).*\(3,\)"):
        stablemax_cross_entropy(z, y, weight=torch.ones(4))
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        stablemax_cross_entropy(z, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing=-0.1"):
        StableMaxCrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"target of shape \(1,\)"):
        stablemax_cross_entropy(z, y[:1])  # would otherwise broadcast silently
    with pytest.raises(TypeError, match="weight="):
        stablemax_cross_entropy(z, y, torch.ones(3))  # F.cross_entropy's third positional is weight
    with pytest.raises(TypeError, match="probabilities are not supported"):
        stablemax_cross_entropy(z, torch.zeros(4, 3))


# ---- autocast ------------------------------------------------------------------------------------


def test_autocast_computes_in_float32_as_cross_entropy_does():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(16, 8, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    layer = torch.nn.Linear(8, 10)
    with torch.autocast("cpu", torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        theirs = F.cross_entropy(logits, y)
        ours = stablemax_cross_entropy(logits, y)
        explicit = stablemax_cross_entropy(logits, y, dtype=torch.bfloat16)
        module = StableMaxCrossEntropyLoss()(logits, y)
    assert theirs.dtype == ours.dtype == module.dtype == explicit.dtype == torch.float32
    expected = stablemax_cross_entropy(logits.float(), y)  # the bf16 logits, the loss in float32
    assert torch.equal(ours, expected) and torch.equal(module, expected)
    in_bf16 = stablemax_cross_entropy(logits.detach(), y)  # outside autocast: computed in bf16
    assert in_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(explicit, in_bf16.float())  # dtype= wins over autocast
    ours.backward()
    assert layer.weight.grad.dtype == torch.float32


def test_autocast_leaves_float64_alone():
    z, y, _ = data((6, 4), seed=8)
    with torch.autocast("cpu", torch.bfloat16):
        out = stablemax_cross_entropy(z, y)
        assert out.dtype == F.cross_entropy(z, y).dtype == torch.float64
    assert torch.equal(out, stablemax_cross_entropy(z, y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_float16_computes_in_float32():
    z = torch.randn(32, 7, device="cuda")
    y = torch.randint(0, 7, (32,), device="cuda")
    layer = torch.nn.Linear(7, 7).cuda()
    with torch.autocast("cuda", torch.float16):
        logits = layer(z)
        ours, theirs = stablemax_cross_entropy(logits, y), F.cross_entropy(logits, y)
        explicit = stablemax_cross_entropy(logits, y, dtype=torch.float16)
    assert ours.dtype == theirs.dtype == explicit.dtype == torch.float32
    assert torch.equal(ours, stablemax_cross_entropy(logits.float(), y))
    torch.testing.assert_close(explicit, stablemax_cross_entropy(logits.detach(), y).float())
