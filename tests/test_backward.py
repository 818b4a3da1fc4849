import pytest
import torch

from grokking import backward
from grokking.backward import row_shifts, scaled_backward
from grokking.checkpoint import config_differences
from grokking.cli import compose
from grokking.config import DatasetConfig, ModelConfig
from grokking.data import build_dataset
from grokking.fused import softmax_cross_entropy
from grokking.models import build_model
from grokking.train import to_config
from grokking.validation import ConfigError, validate


def mlp_grads(log2_scale: int, loss_dtype: torch.dtype) -> list[torch.Tensor]:
    data = build_dataset(DatasetConfig(name="add_mod", modulus=23, train_fraction=0.4))
    model = build_model(ModelConfig(name="mlp", width=32), data, [0, 1])
    params = list(model.parameters())
    logits = model(data.train_x)
    loss = softmax_cross_entropy(logits, data.train_y, loss_dtype).mean(-1).sum()
    scaled_backward(loss, logits, params, log2_scale, loss_dtype)
    return [p.grad for p in params]


@pytest.mark.parametrize("loss_dtype", [torch.float16, torch.float32, torch.float64])
def test_power_of_two_scale_gives_the_same_gradients_bit_for_bit(loss_dtype):
    for plain, scaled in zip(mlp_grads(0, loss_dtype), mlp_grads(40, loss_dtype)):
        assert torch.isfinite(scaled).all()
        assert torch.equal(plain, scaled)


def test_scaled_backward_keeps_precision_that_subnormal_products_lose():
    """A gradient of 1e-42 at the logits: the plain backward multiplies subnormals (few significant
    bits) and sums them; the scaled one computes the very same float32 matmul on normal numbers
    and rounds once at the end, to the subnormal result. So it equals that matmul at a normal
    scale bit for bit (whatever order the BLAS sums in), and the plain pass is off by dozens of
    subnormal steps (53 on an AVX-512 machine)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4096, 8, generator=gen) + 0.5
    upstream = 1e-42 * (torch.rand(4096, 4, generator=gen) + 1)  # subnormal in float32
    at_normal_scale = ((x.T @ (upstream * 2.0**40)).double() * 2.0**-40).float()  # one rounding
    grads = {}
    for k in (0, 40):
        w = torch.zeros(8, 4, requires_grad=True)
        logits = x @ w
        scaled_backward((logits * upstream).sum(), logits, [w], k, torch.float32)
        grads[k] = w.grad
    assert torch.equal(grads[40], at_normal_scale)
    assert (grads[0] - at_normal_scale).abs().max() >= 10 * 2.0**-149


def test_mixed_bands_keep_a_gradient_made_only_of_subnormal_logit_gradients():
    """Two samples on disjoint features: one with ordinary logit gradients, one whose logit
    gradients at the backward scale 2^40 are subnormal float32 (3, -5, 2 × 2^-141). Their rows get
    different bands (2^40 and 2^200), so the backward runs once per band; the second feature's weight gradient comes
    only from the subnormal values and is exact, (3, -5, 2) × 2^-121, as with one band."""
    h = torch.zeros(2, 4)
    h[0, 0], h[1, 1] = 1.0, 2.0**60
    upstream = torch.zeros(2, 3, dtype=torch.float64)
    upstream[0] = torch.tensor([0.25, -0.5, 0.25])
    upstream[1] = torch.tensor([3.0, -5.0, 2.0], dtype=torch.float64) * 2.0**-181
    at_scale = (upstream * 2.0**40).float()
    assert 0 < at_scale[1].abs().max() < torch.finfo(torch.float32).tiny
    assert row_shifts(at_scale, 40).tolist() == [40, 200]
    grads = {}
    for bands in (True, False):
        backward.BANDS["on"] = bands
        try:
            w = torch.zeros(4, 3, requires_grad=True)
            logits = h @ w
            scaled_backward((logits.double() * upstream).sum(), logits, [w], 40, torch.float64)
        finally:
            backward.BANDS["on"] = True
        grads[bands] = w.grad
    expected = (h.double().T @ upstream).float()
    assert torch.equal(grads[True], expected) and torch.equal(grads[False], expected)
    assert torch.equal(grads[True][1], torch.tensor([3.0, -5.0, 2.0]) * 2.0**-121)


def test_zero_gradient_stays_exactly_zero():
    w = torch.ones(3, 2, requires_grad=True)
    logits = torch.ones(5, 3) @ w
    scaled_backward((logits * 0).sum(), logits, [w], 40, torch.float32)
    assert torch.equal(w.grad, torch.zeros(3, 2))


@pytest.mark.parametrize("k", [-1, 65])
def test_scale_exponent_out_of_range_is_a_config_error(k):
    cfg, _ = to_config(compose([f"precision.backward_log2_scale={k}"]))
    with pytest.raises(ConfigError, match=f"precision.backward_log2_scale={k} is not valid"):
        validate(cfg)


def test_a_run_saved_before_the_scale_existed_resumes_with_scale_0_only():
    _, current = to_config(compose([]))
    saved = {**current, "precision": {k: v for k, v in current["precision"].items() if k != "backward_log2_scale"}}
    assert config_differences(saved, current) == ["precision.backward_log2_scale"]
    _, legacy = to_config(compose(["precision.backward_log2_scale=0"]))
    assert config_differences(saved, legacy) == []


def test_a_checkpoint_saved_before_the_scale_existed_resumes_with_scale_0(run, tmp_path):
    from grokking.checkpoint import CHECKPOINT, SUMMARY, load_checkpoint, save_checkpoint

    tiny = ["dataset.modulus=23", "model.width=32", "epochs=4", "log_every=2", "checkpoint_every=2"]
    out = tmp_path / "old"
    run([*tiny, "precision.backward_log2_scale=0", "epochs=2"], out)
    ckpt = load_checkpoint(out / CHECKPOINT)  # make it look like a run saved before the key existed
    del ckpt["config"]["precision"]["backward_log2_scale"]
    ckpt["config"]["epochs"] = 4
    save_checkpoint(out / CHECKPOINT, ckpt)
    (out / SUMMARY).unlink()
    with pytest.raises(ConfigError, match=r"saved before precision.backward_log2_scale=0 became configurable"):
        run(tiny, out)
    summary, _ = run([*tiny, "precision.backward_log2_scale=0"], out)
    assert summary["status"] == "completed" and summary["epoch"] == 4
