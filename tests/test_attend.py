import pytest
import torch

from grokking.attend import attend, attend_reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attend_equals_its_definition_forward_and_backward(dtype):
    R, N, h, e = 2, 7, 3, 4
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(R, N, 2, h, e, generator=gen, dtype=dtype),
        4 * torch.randn(R, N, 2, h, generator=gen, dtype=dtype),
        4 * torch.randn(R, h, generator=gen, dtype=dtype),
        torch.randn(R, h, e, generator=gen, dtype=dtype),
    ]
    fast = [t.clone().requires_grad_() for t in inputs]
    ref = [t.clone().requires_grad_() for t in inputs]
    z, z_ref = attend(*fast), attend_reference(*ref)
    torch.testing.assert_close(z, z_ref)
    upstream = torch.randn(R, N, h, e, generator=gen, dtype=dtype)
    (z * upstream).sum().backward()
    (z_ref * upstream).sum().backward()
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a.grad, b.grad)


def test_attend_gradients_against_finite_differences():
    gen = torch.Generator().manual_seed(1)
    inputs = (
        torch.randn(1, 3, 2, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 3, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 2, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(attend, inputs)
