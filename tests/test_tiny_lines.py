"""Weights whose lines are made only of subnormals (the dead units of a run with a large weight
decay) are multiplied apart, in float64, on both training paths: the step computes what it did,
without the slow subnormal arithmetic (grokking.models.tiny_lines, TinyLines in the C++ step)."""

import shutil

import pytest
import torch
from test_native import make_step

from grokking.models import ReluMatmul, tiny_lines

SUB = 2.0**-135  # a float32 subnormal (the smallest normal is 2^-126)


def subnormals(*shape, gen) -> torch.Tensor:
    return SUB * (1 + torch.rand(*shape, generator=gen))


def test_only_lines_of_subnormals_are_tiny():
    w = torch.randn(2, 6, 5)
    assert tiny_lines(w) == (None, None)
    w[0, :, 3] = SUB  # a column of subnormals
    w[1, 4, :] = 0.0  # a line of zeros: nothing to compute apart
    w[1, :, 2] = SUB
    w[1, 0, 2] = 1e-20  # one normal entry: the matmul's outputs are normal
    cols, rows = tiny_lines(w)
    assert cols.shape == (2, 1, 5) and cols.nonzero().tolist() == [[0, 0, 3]]
    assert rows.shape == (2, 6, 1) and rows.nonzero().tolist() == [[1, 4, 0]]  # zeros and one subnormal
    assert tiny_lines(w.double()) == (None, None)  # float64's subnormals lie below 2^-1022


@pytest.mark.parametrize("with_add", [False, True])
def test_relu_matmul_multiplies_tiny_lines_in_float64(with_add):
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(2, 40, 8, generator=gen)
    w = torch.randn(2, 8, 6, generator=gen)
    w[0, :, 1] = subnormals(8, gen=gen)  # a column: outputs of the forward product
    w[1, 3, :] = subnormals(6, gen=gen)  # a row: outputs of the backward product
    add = torch.randn(2, 1, 6, generator=gen) if with_add else None
    h.requires_grad_(True)
    w.requires_grad_(True)
    out = ReluMatmul.apply(h, w, add)
    grad = torch.randn(2, 40, 6, generator=gen)
    out.backward(grad)
    a = torch.relu(h.detach())
    # the add happens inside the matmul: on some BLAS (AVX-512 MKL) baddbmm rounds otherwise than bmm + add
    plain = torch.bmm(a, w.detach()) if add is None else torch.baddbmm(add, a, w.detach())
    exact = (a.double() @ w.detach().double() + (0 if add is None else add.double())).float()
    normal = torch.ones(2, 6, dtype=torch.bool)
    normal[0, 1] = False
    assert torch.equal(out.detach()[normal[:, None, :].expand_as(out)], plain[normal[:, None, :].expand_as(out)])
    assert torch.equal(out.detach()[0, :, 1], exact[0, :, 1]) and (exact[0, :, 1] != 0).any()
    grad_h = (grad @ w.detach().transpose(1, 2)) * (a > 0)
    exact_h = ((grad.double() @ w.detach().double().transpose(1, 2)) * (a > 0)).float()
    assert torch.equal(h.grad[0], grad_h[0]) and torch.equal(
        h.grad[1, :, [0, 1, 2, 4, 5, 6, 7]], grad_h[1, :, [0, 1, 2, 4, 5, 6, 7]]
    )
    assert torch.equal(h.grad[1, :, 3], exact_h[1, :, 3]) and (exact_h[1, :, 3] != 0).any()


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler: the kernel cannot be built here")
def test_the_cpp_step_computes_tiny_lines_as_autograd_does():
    """A hidden unit fed by a column of subnormal weights stays alive (tiny positive activations):
    its incoming gradient is normal and nonzero only if the column's products were computed. A
    unit whose outgoing row is subnormal passes back subnormal but nonzero gradients."""
    overrides = ["loss=softmax", "precision=float32", "model.depth=2"]
    steps = [make_step(overrides), make_step(overrides, kernel="torch")]
    assert steps[0].native is not None and steps[1].native is None
    gen = torch.Generator().manual_seed(1)
    col, row = 3, 5
    w1 = steps[0].params[1].detach().clone()
    w1[0, :, col] = subnormals(w1.shape[1], gen=gen)
    w2 = steps[0].params[2].detach().clone()
    w2[0, row, :] = subnormals(w2.shape[2], gen=gen)
    for step in steps:
        with torch.no_grad():
            step.params[1].copy_(w1)
            step.params[2].copy_(w2)
        step()
    native, autograd = (step.params[1].grad[0] for step in steps)
    for g in (native, autograd):
        assert (g[:, col].abs() > torch.finfo(torch.float32).tiny).any()  # normal: the column's products reached it
        assert (g[:, row] != 0).any()  # subnormal, from the row's products
    torch.testing.assert_close(native[:, col], autograd[:, col], rtol=1e-4, atol=0)
    torch.testing.assert_close(native[:, row], autograd[:, row], rtol=1e-2, atol=0)
