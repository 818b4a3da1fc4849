"""The MLP kernel's row bands (grokking/native/common.h): after Softmax Collapse the backward pass
runs each sample at its own power-of-two scale, so that no subnormal float32 enters the GEMMs.
Where no value is subnormal they change nothing, bit for bit; where some are, they drop nothing."""

import shutil

import numpy as np
import pytest
import torch

import grokking.native as native
from grokking.step import TrainStep
from tests.test_native import assert_same_step, make_step


@pytest.fixture(scope="module")
def kernel():
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler: the kernel cannot be built here (autograd is used)")
    return native.load()


def outputs(step: TrainStep):
    logits, per_sample, _ = step()
    return [logits.clone(), per_sample.clone(), *(p.grad.clone() for p in step.params)]


def with_bands(kernel, on: bool, f):
    kernel.set_row_bands(on)
    try:
        return f()
    finally:
        kernel.set_row_bands(True)


FLOAT32_MODELS = [
    ["loss=softmax", "precision=float32"],
    ["loss=stablemax", "precision=float64"],
    ["loss=softmax", "precision=float64", "optimizer=adamw"],
    ["loss=softmax", "model.bias=true", "model.depth=3"],
    ["dataset=sparse_parity", "dataset.n_samples=300", "loss=stablemax", "model.bias=true"],
]


@pytest.mark.parametrize("overrides", FLOAT32_MODELS, ids=lambda o: " ".join(o))
def test_bands_change_nothing_where_no_value_is_subnormal(kernel, overrides):
    """From the initialization and along 30 AdamW steps: bit for bit what the step computes with
    every row at the backward scale (the arithmetic before the bands)."""
    step = make_step([*overrides, "optimizer=adamw", "optimizer.lr=0.01"])
    for _ in range(30):
        banded = outputs(step)
        plain = with_bands(kernel, False, lambda: outputs(step))
        assert all(torch.equal(a, b) for a, b in zip(banded, plain))
        step.optimizer.step()


def collapsed(overrides, scale: float):
    """A native and an autograd step whose shared weights have the last layer × scale: the rows'
    logits span up to two hundred (Softmax Collapse), so that their gradients cover several bands,
    some rows round to zero entirely, and chunks hold rows of different bands in any order."""
    steps = make_step(overrides), make_step(overrides, kernel="torch")
    with torch.no_grad():
        steps[0].model.weights[-1].mul_(scale)
        for p, q in zip(steps[0].params, steps[1].params):
            q.copy_(p)
    return steps


def subnormal_logit_gradients(step: TrainStep) -> int:
    """How many of the logits' gradients at the backward scale 2^40 are subnormal float32 (from the
    step's logits, in float64)."""
    logits, _, _ = step()
    z, y = logits[0].double(), step.data.train_y
    grad = torch.softmax(z, -1) - torch.nn.functional.one_hot(y, z.shape[-1])
    grad = (grad * 2.0**40 / len(y)).float().abs()
    return int(((grad > 0) & (grad < torch.finfo(torch.float32).tiny)).sum())


LATE = [
    ["loss=softmax", "precision=float64"],
    ["loss=softmax", "precision=float32"],
    ["loss=softmax", "model.bias=true", "model.depth=3", "precision=float64"],
    ["dataset=sparse_parity", "dataset.n_samples=300", "loss=softmax", "model.bias=true", "precision=float64"],
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("overrides", LATE, ids=lambda o: " ".join(o))
def test_collapsed_rows_match_autograd_and_repeat_exactly(kernel, overrides, threads):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        ours, reference = collapsed(overrides, 3000.0)
        assert subnormal_logit_gradients(reference) > 0  # the state is late
        first = outputs(ours)
        assert all(torch.equal(a, b) for a, b in zip(first, outputs(ours)))  # deterministic
        plain = with_bands(kernel, False, lambda: outputs(ours))
        for a, b in zip(first, plain):  # the same up to the rounding of subnormal values
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6 * b.abs().max().item())
        assert_same_step(ours, reference, rtol=2e-6)
        # every column of the last layer's gradient (one class), however small, to 1e-4 of its own largest entry
        ours_last, reference_last = ours.model.weights[-1].grad, reference.model.weights[-1].grad
        scale = reference_last.abs().amax(-2, keepdim=True)
        assert (scale > 0).all()
        assert ((ours_last - reference_last).abs() <= 1e-4 * scale).all()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("log2_activation", [40, 60])
def test_a_gradient_made_only_of_subnormal_logit_gradients_is_exact(kernel, log2_activation):
    """StableMax rows whose every nonzero logit gradient at the backward scale 2^40 is a subnormal
    float32 (2^-128 … 2^-140, powers of two, so that their sums are exact): the last layer's
    gradient is 64 × 2^(a - 40) × those values, exactly, as the kernel computed it before the bands
    (with subnormal arithmetic), nothing flushed or dropped. With hidden activations of 2^60 the scaled rows overflow float32 and the step falls
    back to every row at the backward scale, with the same result."""
    n, vocab, hidden, js = 64, 4, 8, list(range(18, 25))
    classes = 1 + len(js)
    w0 = torch.zeros(2 * vocab, hidden)
    w0[:, 0] = 2.0 ** (log2_activation - 1)  # every sample's hidden unit 0 is 2^a, the others 0
    w1 = torch.zeros(hidden, classes)
    w1[0, 0] = 2.0 ** (126 - log2_activation)  # logit of the label: 2^126
    for k, j in enumerate(js, start=1):
        w1[0, k] = -(2.0**j - 1) * 2.0**-log2_activation  # logit -(2^j - 1): 1 - z = 2^j
    x = torch.stack([torch.arange(n) % vocab, vocab + torch.arange(n) // vocab % vocab], 1)
    y = torch.zeros(n, dtype=torch.long)
    # StableMax at 2^40: g = 2^34 per sample, total = 2^126 (the rest absorbed), g / total = 2^-92
    expected = torch.zeros(hidden, classes)
    for k, j in enumerate(js, start=1):
        inv_b = 1.0 / 2.0**j
        delta = np.float32(inv_b * inv_b * 2.0**-92)  # the logit gradient at 2^40: 2^(-2j - 92)
        assert 0 < delta < np.finfo(np.float32).tiny  # subnormal
        expected[0, k] = float(delta) * 2.0 ** (6 + log2_activation - 40)  # exact in float32
    assert (expected[0, 1:] != 0).all()
    for bands in (True, False):
        grads = [torch.full_like(w0, float("nan")), torch.full_like(w1, float("nan"))]
        with_bands(
            kernel, bands, lambda g=grads: kernel.mlp_step([w0, w1], [], x, True, y, 1, torch.float64, 2.0**40, 32, g)
        )
        assert torch.equal(grads[1], expected) and torch.equal(grads[0], torch.zeros_like(w0))
