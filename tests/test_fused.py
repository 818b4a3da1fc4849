"""The fused training losses equal the readable definitions of grokking.losses."""

import pytest
import torch

from grokking.fused import FUSED, training_loss
from grokking.losses import LOSSES

CASES = [
    (name, dtype, scale) for name in FUSED for dtype in ("float16", "float32", "float64") for scale in (1, 30, 1e3)
]


@pytest.mark.parametrize("name,dtype,scale", CASES)
def test_fused_loss_equals_definition_in_value_and_gradient(name, dtype, scale):
    dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 200, 13, generator=gen) * scale
    y = torch.randint(0, 13, (200,), generator=gen)
    z[0, :5], y[:5] = 0.0, 3
    z[0, :5, 3] = 200.0  # rows in Softmax Collapse in every dtype
    z_ref = z.clone().requires_grad_()
    z.requires_grad_()
    out, ref = FUSED[name](z, y, dtype), LOSSES[name].fn(z_ref, y, dtype)
    assert out.dtype == ref.dtype == dtype
    assert torch.equal(out, ref)  # the same per-sample values, bit for bit
    g = torch.rand(2, 200, generator=gen).to(dtype)
    out.backward(g)
    ref.backward(g)
    assert z.grad.dtype == torch.float32
    tol = {torch.float16: 2e-3, torch.float32: 1e-6, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=tol, atol=tol)
    if name == "softmax":
        assert torch.equal(z.grad[0, :5, 3], torch.zeros(5))  # no gradient through z_y under SC


def test_training_loss_falls_back_to_the_definition():
    assert training_loss("softmax") is FUSED["softmax"]
    assert training_loss("mse") is LOSSES["mse"].fn
