import pytest
import torch

from grokking.config import DatasetConfig, ModelConfig
from grokking.data import build_dataset
from grokking.models import MLP, TokenInput, build_model, relu_matmul


def modular_data():
    return build_dataset(DatasetConfig(name="add_mod", modulus=11, train_fraction=0.5))


def test_gather_first_layer_equals_dense_layer_on_concatenated_one_hots():
    data = modular_data()
    model = build_model(ModelConfig(name="mlp", depth=2, width=16), data, [0]).double()
    x = data.train_x
    one_hot = torch.cat([torch.nn.functional.one_hot(x[:, 0], 11), torch.nn.functional.one_hot(x[:, 1], 11)], 1)
    dense_w = model.weights[0].detach().clone().requires_grad_(True)
    dense = one_hot.double() @ dense_w[0]
    gathered = model.first_layer(x)[0]
    torch.testing.assert_close(gathered, dense)
    upstream = torch.randn_like(dense)
    (gathered * upstream).sum().backward()
    (dense * upstream).sum().backward()
    torch.testing.assert_close(model.weights[0].grad, dense_w.grad)


def test_mlp_init_matches_pytorch_default_linear():
    data = modular_data()
    model = build_model(ModelConfig(name="mlp", depth=2, width=16), data, [0])
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ref = torch.nn.Linear(22, 16, bias=False)
    bound = 1 / 22**0.5
    expected = torch.empty(16, 22).uniform_(-bound, bound, generator=g)
    torch.testing.assert_close(model.weights[0][0], expected.T)
    assert model.weights[0].abs().max() <= bound
    assert ref.weight.abs().max() <= bound


def test_replica_r_is_the_model_of_seed_r():
    data = modular_data()
    for cfg in (ModelConfig(name="mlp", bias=True), ModelConfig(name="transformer", d_model=16, n_heads=2, d_mlp=32)):
        batched = build_model(cfg, data, [3, 5, 7])
        single = build_model(cfg, data, [5])
        for pb, ps in zip(batched.parameters(), single.parameters()):
            torch.testing.assert_close(pb[1:2], ps, rtol=0, atol=0)
        torch.testing.assert_close(batched(data.train_x)[1:2], single(data.train_x))


def test_mlp_on_vector_inputs_and_biases():
    data = build_dataset(
        DatasetConfig(name="sparse_parity", noise_bits=5, parity_bits=2, n_samples=64, train_fraction=0.5)
    )
    model = build_model(ModelConfig(name="mlp", bias=True, width=8), data, [0, 1])
    assert isinstance(model, MLP)
    assert model(data.train_x).shape == (2, 32, 2)
    assert len(model.param_names()) == len(list(model.parameters())) == 6


def test_transformer_shapes_and_names():
    data = modular_data()
    model = build_model(ModelConfig(name="transformer"), data, [0])
    assert model(data.train_x).shape == (1, len(data.train_y), 11)
    assert {"embed", "pos_embed", "W_in", "W_out", "unembed"} <= set(model.param_names())


def full_causal_transformer(m, x: torch.Tensor, r: int = 0) -> torch.Tensor:
    """The textbook computation: every position's stream, causal mask, logits of the last position."""
    n, eq = len(x), m.embed.shape[1] - 1
    tokens = torch.cat([x, torch.full((n, 1), eq)], 1)
    resid = m.embed[r][tokens] + m.pos_embed[r]  # (N, 3, d)
    q = torch.einsum("npd,hde->nhpe", resid, m.W_Q[r])
    k = torch.einsum("npd,hde->nhpe", resid, m.W_K[r])
    v = torch.einsum("npd,hde->nhpe", resid, m.W_V[r])
    scores = torch.einsum("nhqe,nhke->nhqk", q, k) / m.W_Q.shape[-1] ** 0.5
    scores = scores.masked_fill(torch.triu(torch.ones(3, 3, dtype=torch.bool), 1), float("-inf"))
    z = torch.einsum("nhqk,nhke->nhqe", scores.softmax(-1), v)
    resid = resid + torch.einsum("nhqe,hed->nqd", z, m.W_O[r])
    resid = resid + torch.relu(resid @ m.W_in[r]) @ m.W_out[r]
    return (resid @ m.unembed[r])[:, -1]


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_transformer_equals_full_causal_attention_forward_and_backward(seeds):
    """The table-based computation (constant "=" stream, per-token keys and values) gives the logits
    and every parameter gradient of the full causal computation."""
    data = modular_data()
    m = build_model(ModelConfig(name="transformer", d_model=16, n_heads=2, d_mlp=32), data, seeds).double()
    x = data.train_x[:40]
    upstream = torch.randn(len(seeds), 40, 11, dtype=torch.float64)
    logits = m(x)
    (logits * upstream).sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    reference = torch.stack([full_causal_transformer(m, x, r) for r in range(len(seeds))])
    (reference * upstream).sum().backward()
    torch.testing.assert_close(logits, reference)
    for name, g, p in zip(m.param_names(), grads, m.parameters()):
        torch.testing.assert_close(g, p.grad, msg=lambda msg, name=name: f"{name}: {msg}")


def test_init_scale_multiplies_every_parameter():
    data = modular_data()
    a = build_model(ModelConfig(name="mlp", bias=True), data, [0])
    b = build_model(ModelConfig(name="mlp", bias=True, init_scale=100.0), data, [0])
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa * 100, pb)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_token_input_matches_indexing_forward_and_backward(dtype):
    idx = torch.stack([torch.randint(0, 7, (50,)), 7 + torch.randint(0, 7, (50,))], 1)
    w = torch.randn(3, 14, 5, dtype=dtype, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()
    g = torch.randn(3, 50, 5, dtype=dtype)
    layer = TokenInput()
    out = layer(w, idx)
    ref = w_ref[:, idx[:, 0]] + w_ref[:, idx[:, 1]]
    assert torch.equal(out, ref)  # the forward pass is exact
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(w.grad, w_ref.grad)
    with torch.no_grad():
        assert torch.equal(layer(w, idx), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_matmul_equals_relu_then_bmm(dtype):
    h = torch.randn(2, 9, 5, dtype=dtype)
    h[0, 0, 0] = 0.0  # ReLU's gradient at 0 is 0, as torch.relu's
    w = torch.randn(2, 5, 4, dtype=dtype)
    g = torch.randn(2, 9, 4, dtype=dtype)
    fast = [h.clone().requires_grad_(), w.clone().requires_grad_()]
    ref = [h.clone().requires_grad_(), w.clone().requires_grad_()]
    out = relu_matmul(*fast)
    expected = torch.bmm(torch.relu(ref[0]), ref[1])
    assert torch.equal(out, expected)
    out.backward(g)
    expected.backward(g)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
