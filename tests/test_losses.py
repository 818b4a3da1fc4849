import torch
from collapse import exactly_collapsed

from grokking.fused import build_loss
from grokking.losses import (
    mse,
    softmax_cross_entropy,
    stablemax,
    stablemax_cross_entropy,
    stablemax_s,
    taylor_cross_entropy,
    zero_correct_class_grad,
)


def test_stablemax_equals_softmax_of_signed_log():
    x = torch.randn(64, 113, dtype=torch.float64) * 30
    g = torch.sign(x) * torch.log1p(x.abs())
    torch.testing.assert_close(stablemax(x), torch.softmax(g, -1), rtol=1e-12, atol=1e-15)


def test_s_is_continuous_and_has_finite_gradient_everywhere():
    x = torch.tensor([-1e6, -1.0, -1e-9, 0.0, 1.0, 1e6], dtype=torch.float64, requires_grad=True)
    stablemax_s(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert stablemax_s(torch.tensor([0.0])).item() == 1.0


def test_softmax_ce_matches_torch_in_float64():
    z = torch.randn(32, 10, dtype=torch.float64) * 5
    y = torch.randint(0, 10, (32,))
    ref = torch.nn.functional.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(softmax_cross_entropy(z, y, torch.float64), ref)


def collapse_rows() -> tuple[torch.Tensor, torch.Tensor]:
    """Gaps 5-60 across the collapse boundary with a large max z (100 + gap), the wrong-class logits
    equal; then 2000 rows whose 112 wrong-class logits lie 14-30 below z_y and are all distinct."""
    gaps = torch.arange(5.0, 60.0)
    equal = torch.full((len(gaps), 113), 100.0, dtype=torch.float64)
    equal[:, 3] += gaps
    gen = torch.Generator().manual_seed(0)
    spread = -torch.empty(2000, 1, dtype=torch.float64).uniform_(14, 22, generator=gen)
    spread = spread - torch.empty(2000, 113, dtype=torch.float64).uniform_(0, 8, generator=gen)
    spread[:, 3] = 0
    return torch.cat([equal, spread]), torch.full((len(gaps) + 2000,), 3)


def test_softmax_ce_is_zero_exactly_where_the_exact_sum_rounds_to_1():
    """The loss is 0 only where Σ exp(z - max z), summed exactly, rounds to 1: the small terms are
    added first (losses.exp_total). Those rows are SC rows by the SC flag's rule too (torch.sum), but
    that sum rounds to 1 on more rows, from gap 21 in float32 here where the exact sum needs 22.
    Adding log Σ to max z before subtracting z_y would round a small log Σ away against max z, giving
    a zero loss from gap 19 in float32."""
    from grokking.fused import softmax_cross_entropy as fused_softmax_cross_entropy
    from grokking.metrics import softmax_collapse

    z, y = collapse_rows()
    for dtype in (torch.float16, torch.float32, torch.float64):
        collapsed = exactly_collapsed(z, dtype)
        assert collapsed.any() and not collapsed.all(), dtype
        assert not (collapsed & ~softmax_collapse(z, dtype)).any(), dtype
        for fn in (softmax_cross_entropy, fused_softmax_cross_entropy):
            assert torch.equal(fn(z, y, dtype) == 0, collapsed), (fn, dtype)
    exact, flag = exactly_collapsed(z, torch.float32), softmax_collapse(z, torch.float32)
    gaps = torch.arange(5, 60)
    assert (gaps[exact[:55]][0], gaps[flag[:55]][0]) == (22, 21)
    assert (flag & ~exact)[55:].float().mean() > 0.05  # distinct logits: many rows only the flag marks


def test_stablemax_ce_is_minus_log_stablemax():
    z = torch.randn(16, 7, dtype=torch.float64) * 4
    y = torch.randint(0, 7, (16,))
    expected = -torch.log(stablemax(z)[torch.arange(16), y])
    torch.testing.assert_close(stablemax_cross_entropy(z, y, torch.float64), expected)


def test_stablemax_keeps_a_gradient_where_softmax_collapses():
    z = torch.zeros(1, 113)
    z[0, 3] = 120.0  # correct class leads by a gap of 120: exp(-120) underflows in float32
    y = torch.tensor([3])
    z_soft = z.clone().requires_grad_(True)
    loss = softmax_cross_entropy(z_soft, y, torch.float32)
    loss.sum().backward()
    assert loss.item() == 0.0
    assert (z_soft.grad == 0).all()
    z_stable = z.clone().requires_grad_(True)
    loss = stablemax_cross_entropy(z_stable, y, torch.float32)
    loss.sum().backward()
    assert loss.item() > 0
    assert z_stable.grad[0, 3] < 0  # still pushes the correct logit up


def test_losses_are_computed_in_the_requested_dtype():
    z = torch.randn(4, 5)
    y = torch.randint(0, 5, (4,))
    for fn in (softmax_cross_entropy, stablemax_cross_entropy, mse):
        for dtype in (torch.float16, torch.float32, torch.float64):
            assert fn(z, y, dtype).dtype == dtype


def test_losses_broadcast_over_replicas():
    z = torch.randn(3, 4, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (4,))
    for fn in (softmax_cross_entropy, stablemax_cross_entropy, mse):
        batched = fn(z, y, torch.float64)
        assert batched.shape == (3, 4)
        torch.testing.assert_close(batched[1], fn(z[1], y, torch.float64))


def test_mse_is_squared_distance_to_one_hot():
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    y = torch.tensor([0, 0])
    torch.testing.assert_close(mse(z, y, torch.float32), torch.tensor([0.0, 5.0]))


def test_label_smoothing_matches_torch():
    z = torch.randn(32, 10, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (32,))
    ref = torch.nn.functional.cross_entropy(z, y, reduction="none", label_smoothing=0.2)
    torch.testing.assert_close(softmax_cross_entropy(z, y, torch.float64, label_smoothing=0.2), ref)


def test_taylor_cross_entropy_uses_second_order_polynomial():
    z = torch.randn(8, 5, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (8,))
    t = 1 + z + z**2 / 2
    expected = -torch.log(t[torch.arange(8), y] / t.sum(-1))
    torch.testing.assert_close(taylor_cross_entropy(z, y, torch.float64), expected)


def test_sc_intervention_hook_zeroes_only_the_correct_class_gradient():
    z = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    z.register_hook(lambda g: zero_correct_class_grad(g, y))
    softmax_cross_entropy(z, y, torch.float64).sum().backward()
    assert (z.grad[:, torch.arange(6), y] == 0).all()
    assert (z.grad.abs().sum(-1) > 0).all()


def test_build_loss_picks_smoothing_and_names():
    from grokking.config import LossConfig

    z = torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    smooth = build_loss(LossConfig(name="softmax", label_smoothing=0.1))
    torch.testing.assert_close(smooth(z, y, torch.float64), softmax_cross_entropy(z, y, torch.float64, 0.1))
    z.requires_grad_(True)
    torch.testing.assert_close(
        build_loss(LossConfig(name="stablemax"))(z, y, torch.float64), stablemax_cross_entropy(z, y, torch.float64)
    )
