import torch

from grokking import metrics


def row_with_gap(gap, c=113, dtype=torch.float32):
    z = torch.zeros(1, c, dtype=dtype)
    z[0, 0] = gap
    return z


def test_sc_flags_a_gap_of_120_but_not_10_in_float32():
    z = torch.cat([row_with_gap(120.0), row_with_gap(10.0)])
    assert metrics.softmax_collapse(z, torch.float32).tolist() == [True, False]


def test_collapse_starts_at_a_smaller_gap_in_lower_precision():
    def onset(dtype):
        gaps = torch.arange(0, 80, 0.25, dtype=torch.float64)
        z = torch.zeros(len(gaps), 113, dtype=torch.float64)
        z[:, 0] = gaps
        collapsed = metrics.softmax_collapse(z, dtype)
        return gaps[collapsed.nonzero()[0, 0]].item()

    f16, f32, f64 = onset(torch.float16), onset(torch.float32), onset(torch.float64)
    assert f16 < f32 < f64
    assert 8 < f16 < 16 and 16 < f32 < 25 and 35 < f64 < 45


def test_zero_loss_fraction_and_sc_fraction():
    z = torch.cat([row_with_gap(120.0), row_with_gap(10.0), row_with_gap(200.0), row_with_gap(14.0)])[None]
    y = torch.zeros(4, dtype=torch.long)
    from grokking.losses import softmax_cross_entropy

    loss = softmax_cross_entropy(z, y, torch.float32)
    out = metrics.output_diagnostics(z, y, loss, "float32")
    assert out["zero_loss_fraction"].item() == 0.5
    assert out["sc_fraction"].item() == 0.5
    assert out["sc_fraction_float64"].item() == 0.5
    assert out["sc_fraction_float16"].item() == 0.75  # gap 14 already collapses in float16


def test_nlm_cosine_is_one_for_minus_c_theta_and_zero_for_orthogonal():
    theta = torch.randn(2, 5, 4, dtype=torch.float64)
    out = metrics.parameter_diagnostics(["w"], [theta], [-3.0 * theta])
    torch.testing.assert_close(out["nlm_cos/w"], torch.ones(2, dtype=torch.float64))
    g = torch.randn(2, 5, 4, dtype=torch.float64)
    g = g - (theta * g).flatten(1).sum(1)[:, None, None] / (theta**2).flatten(1).sum(1)[:, None, None] * theta
    out = metrics.parameter_diagnostics(["w"], [theta], [g])
    assert out["nlm_cos"].abs().max() < 1e-12


def test_norms_and_zero_gradient_share():
    w = torch.tensor([[3.0, 4.0]])
    b = torch.tensor([[12.0]])
    out = metrics.parameter_diagnostics(["w", "b"], [w, b], [torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0]])])
    assert out["weight_norm/w"].item() == 5.0
    assert out["weight_norm"].item() == 13.0
    assert abs(out["zero_grad_fraction"].item() - 2 / 3) < 1e-12
    assert out["grad_norm"].item() == 1.0


def test_absorbed_update_share_on_a_hand_built_pair():
    before = [torch.tensor([[1.0, 1.0, 1.0, 1.0]])]
    g = [torch.tensor([[1e-9, 1.0, 0.0, 1e-9]])]
    after = [before[0] - 0.1 * g[0]]  # 1 - 1e-10 rounds to 1 in float32: absorbed
    after[0][0, 3] = 0.5  # a changed entry
    # entries: absorbed (nonzero grad, unchanged), changed, zero grad (not counted), changed
    assert metrics.absorbed_fraction(before, after, g).item() == 0.25


def test_logit_norm_max_and_margin_by_hand():
    z = torch.tensor([[[3.0, 4.0, 0.0], [1.0, 0.0, 2.0]]])
    y = torch.tensor([1, 0])
    out = metrics.logit_stats(z, y)
    torch.testing.assert_close(out["logit_norm"], torch.tensor([(5.0 + 5**0.5) / 2]))
    torch.testing.assert_close(out["logit_max"], torch.tensor([3.0]))
    torch.testing.assert_close(out["logit_margin"], torch.tensor([(1.0 - 1.0) / 2]))


def test_correct_counts_are_integers():
    z = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
    counts = metrics.correct_counts(z, torch.tensor([1, 0, 0]))
    assert counts.dtype == torch.int64 and counts.item() == 2


def test_norms_and_alignment_survive_tiny_float64_gradients():
    """After Softmax Collapse float64 gradients of ≈ 1e-170 occur; their squares underflow."""
    theta = torch.randn(2, 50, dtype=torch.float64)
    out = metrics.parameter_diagnostics(["w"], [theta], [-1e-170 * theta])
    torch.testing.assert_close(out["nlm_cos"], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(out["grad_norm"], 1e-170 * theta.norm(dim=1))
