"""Models with a leading replica dimension.

Every parameter has shape ``(R, ...)``: R independent copies of the network (one per init seed)
trained at once by batched matmuls. Replica ``r`` is initialized from its own generator seeded with
``seeds[r]``, so it is the same network a single-seed run with that seed would build. With R = 1 this
is an ordinary single model. Inputs are shared by all replicas; logits have shape ``(R, N, C)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from grokking.attend import attend
from grokking.data import Dataset
from grokking.errors import require
from grokking.registry import Param, Registry

if TYPE_CHECKING:
    from grokking.config import ModelConfig  # generated from the parameters below


@dataclass(frozen=True)
class ModelEntry:
    """A model option: ``build(cfg, data, gens)`` returns the replicated model (one generator per
    replica); ``tokens``: it reads integer-token inputs only; ``check(cfg)`` raises a
    :class:`grokking.errors.ConfigError` on a bad value; ``footprint(cfg, inputs, classes)`` gives
    (parameters per replica, floats stored per sample in a training step) for the memory estimate."""

    build: Callable[[ModelConfig, Dataset, list[torch.Generator]], nn.Module]
    tokens: bool = False
    check: Callable[[ModelConfig], None] | None = None
    footprint: Callable[[ModelConfig, int, int], tuple[int, int]] | None = None


INIT_SCALE = Param(
    "init_scale", float, 1.0, "every parameter is multiplied by this after the default init", 1e-4, 1e4
)  # beyond this range the initial weights underflow or the logits overflow
OUTPUT_SCALE = Param(
    "output_scale",
    float,
    1.0,
    "the network's output (the logits) is multiplied by this α at every forward pass",
    1e-4,
    1e4,
)  # Kumar et al. (2024): α sets how lazy training starts; the same bounds as init_scale. The loss and
# every diagnostic then see the logits that loss.temperature = 1/α gives (tests/test_interventions.py)
MODELS: Registry[ModelEntry] = Registry("model.name", ModelEntry, shared=(INIT_SCALE, OUTPUT_SCALE))


def normal_(shape: tuple[int, ...], std: float, gens: list[torch.Generator]) -> nn.Parameter:
    return nn.Parameter(torch.stack([torch.empty(shape).normal_(0.0, std, generator=g) for g in gens]))


def token_matrix_t(idx: torch.Tensor, vocab: int, dtype: torch.dtype) -> torch.Tensor:
    """The transposed 0/1 matrix A (vocab, N) of the token input: A[v, n] = #{k : idx[n, k] = v}, as CSR."""
    n, k = idx.shape
    rows = torch.arange(n, device=idx.device).repeat_interleave(k)
    ones = torch.ones(n * k, dtype=dtype, device=idx.device)
    a_t = torch.sparse_coo_tensor(torch.stack([idx.reshape(-1), rows]), ones, (vocab, n), check_invariants=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return a_t.coalesce().to_sparse_csr()


def token_sum(w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``out[r, n] = Σ_k w[r, idx[n, k]]`` for weights ``(R, V, H)`` and tokens ``idx (N, K)`` shared
    by the replicas, as one ``embedding_bag`` sum (exactly ``w[r, idx[:, 0]] + w[r, idx[:, 1]] + ...``).
    """
    r, v, h = w.shape
    if r > 1:  # replica r reads rows r·V + idx of the flattened weights
        idx = idx + v * torch.arange(r, device=idx.device).view(r, 1, 1)
    return F.embedding_bag(idx.reshape(-1, idx.shape[-1]), w.reshape(r * v, h), mode="sum").view(r, -1, h)


class TableRows:
    """The table rows ``[a, vocab + b]`` of token pairs ``x (N, 2)`` (as one column (2N, 1) with
    ``column``), remembered for the last two inputs seen (the training and the test set): the same
    tensor object each time, and computed on the device without host copies (so that a CUDA graph
    capture never needs one)."""

    def __init__(self, vocab: int, column: bool = False):
        self.vocab, self.column = vocab, column
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for seen, rows in self.cache:
            if seen is x:
                return rows
        rows = torch.stack([x[:, 0], x[:, 1] + self.vocab], 1)
        rows = rows.view(-1, 1) if self.column else rows
        self.cache = [*self.cache[-1:], (x, rows)]
        return rows


class TokenSum(torch.autograd.Function):
    """:func:`token_sum` whose backward pass ``∂w[r] = Aᵀ ∂out[r]`` is a sparse matrix product with
    the token matrix ``Aᵀ`` (:func:`token_matrix_t`), several times cheaper on CPU than the scatter-add
    of indexing's backward.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, idx: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a_t)
        return token_sum(w, idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (a_t,) = ctx.saved_tensors
        return torch.stack([a_t @ g for g in grad]), None, None


class TokenInput(nn.Module):
    """The product of a one-hot token input with a weight ``(R, V, H)``: the sum of the weight rows
    the tokens pick. This is the first layer of the MLP and the embedding of the transformer.

    On CPU it runs :class:`TokenSum` and keeps the token matrix of the last input that needed a
    gradient (the training set: the same tensor every step). Elsewhere it uses plain indexing.
    """

    def __init__(self):
        super().__init__()
        self.cache: tuple[torch.Tensor, torch.dtype, torch.Tensor] | None = None

    def forward(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if w.device.type != "cpu":
            return w[:, idx].sum(2)
        if not (torch.is_grad_enabled() and w.requires_grad):
            return token_sum(w, idx)
        if self.cache is None or self.cache[0] is not idx or self.cache[1] != w.dtype:
            self.cache = (idx, w.dtype, token_matrix_t(idx, w.shape[1], w.dtype))
        return TokenSum.apply(w, idx, self.cache[2])


class ReluMatmul(torch.autograd.Function):
    """``add + bmm(relu(h), w)`` (``add``: a bias or a residual stream, broadcast; or None). The sum
    happens inside the matmul (``baddbmm``), and the backward masks the input gradient in place: no
    extra (R, N, H) tensors and passes for ReLU's and the addition's own autograd nodes. The saved
    ``relu(h)`` serves both gradients."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, add: torch.Tensor | None) -> torch.Tensor:
        a = torch.relu(h)
        ctx.save_for_backward(a, w)
        ctx.add_shape = None if add is None else add.shape
        cols, rows = tiny_lines(w)
        ctx.tiny_rows = rows
        w_fwd = w if cols is None else w.masked_fill(cols, 0)
        out = torch.bmm(a, w_fwd) if add is None else torch.baddbmm(add, a, w_fwd)
        if cols is not None:
            apart(out, a, w, cols, add)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, w = ctx.saved_tensors
        grad_w = torch.bmm(a.transpose(1, 2), grad) if ctx.needs_input_grad[1] else None
        grad_h = grad_add = None
        if ctx.needs_input_grad[0]:
            rows = ctx.tiny_rows
            w_bwd = w if rows is None else w.masked_fill(rows, 0)
            grad_h = torch.bmm(grad, w_bwd.transpose(1, 2))
            if rows is not None:
                apart(grad_h, grad, w.transpose(1, 2), rows.transpose(1, 2))
            torch.ops.aten.threshold_backward.grad_input(grad_h, a, 0, grad_input=grad_h)  # 0 where h ≤ 0
        if ctx.add_shape is not None and ctx.needs_input_grad[2]:
            grad_add = grad.sum_to_size(ctx.add_shape)
        return grad_h, grad_w, grad_add


def tiny_lines(w: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The lines of a float32 weight ``w`` (R, in, out) made only of zeros and subnormals, with at
    least one subnormal: its columns (the outputs of ``a @ w`` they feed) and its rows (the outputs
    of ``δ @ wᵀ``), each a mask broadcastable to ``w``, or None where there are none (always None
    for other dtypes and devices). One pass over ``w``, in the forward; the backward reuses the rows.

    A matmul whose outputs are subnormal runs up to ~50× slower on CPU (a microcode assist per
    multiply-add). Weight decay makes such lines: the weights of a ReLU unit that is dead for the
    whole batch get no gradient and shrink geometrically, into float32's subnormal range after a few
    hundred epochs at a large decay. Their outputs are computed apart (:func:`apart`), the matmul on
    the rest, as the C++ step does (``TinyLines`` in grokking/native/common.h)."""
    if w.dtype != torch.float32 or w.device.type != "cpu":
        return None, None
    magnitude = w.detach().abs()

    def lines(dim: int) -> torch.Tensor | None:
        largest = magnitude.amax(dim, keepdim=True)
        found = (largest > 0) & (largest < torch.finfo(w.dtype).tiny)
        return found if found.any() else None

    return lines(1), lines(2)


def apart(
    out: torch.Tensor, a: torch.Tensor, w: torch.Tensor, cols: torch.Tensor, add: torch.Tensor | None = None
) -> None:
    """Overwrite the columns ``cols`` (R, 1, out) of ``out = add + a @ w`` with their values computed
    in float64 and rounded once: the matmul's own float32 arithmetic, less its subnormal roundings."""
    for r in range(w.shape[0]):
        j = cols[r, 0].nonzero().squeeze(1)
        if len(j):
            exact = a[r].double() @ w[r][:, j].double()
            if add is not None:
                exact += add.expand(out.shape)[r][:, j].double()
            out[r][:, j] = exact.to(out.dtype)


def relu_matmul(h: torch.Tensor, w: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """``add + torch.bmm(torch.relu(h), w)``, batched over replicas."""
    return ReluMatmul.apply(h, w, add)


class MLP(nn.Module):
    """ReLU MLP. PyTorch's default ``nn.Linear`` init: U(±1/sqrt(fan_in)) for weights and biases.

    With token inputs (modular arithmetic) the first layer acts on two concatenated one-hot vectors
    of size ``vocab``; it is computed as the sum of two rows of its weight (a gather), which is
    exactly the dense product with the one-hot input at a fraction of the cost. The output is
    multiplied by ``cfg.output_scale`` (Kumar et al. 2024's α; 1 leaves it untouched).
    """

    def __init__(self, cfg: ModelConfig, in_dim: int, out_dim: int, vocab: int | None, gens: list[torch.Generator]):
        super().__init__()
        self.output_scale = cfg.output_scale
        self.vocab = vocab
        self.tokens = TokenInput()
        self.rows = TableRows(vocab) if vocab is not None else None
        fan_in = 2 * vocab if vocab is not None else in_dim
        dims = [fan_in] + [cfg.width] * cfg.depth + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList() if cfg.bias else None
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            # drawn in nn.Linear's order: weight (out, in), then bias, stored transposed as (in, out)
            w = [torch.empty(d_out, d_in).uniform_(-bound, bound, generator=g).T.contiguous() for g in gens]
            b = [torch.empty(d_out).uniform_(-bound, bound, generator=g) for g in gens] if cfg.bias else None
            self.weights.append(nn.Parameter(torch.stack(w)))
            if b is not None:
                self.biases.append(nn.Parameter(torch.stack(b)[:, None, :]))

    def first_layer(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights[0]
        bias = None if self.biases is None else self.biases[0]
        if self.vocab is None:  # (N, D) @ (R, D, H) -> (R, N, H), the inputs shared (not copied) by replicas
            x = x.expand(w.shape[0], *x.shape)
            return torch.bmm(x, w) if bias is None else torch.baddbmm(bias, x, w)
        h = self.tokens(w, self.rows(x))  # w[:, a] + w[:, vocab + b]: (R, N, H)
        return h if bias is None else h + bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first_layer(x)
        for i in range(1, len(self.weights)):
            h = relu_matmul(h, self.weights[i], None if self.biases is None else self.biases[i])
        return h if self.output_scale == 1.0 else h * self.output_scale

    def param_names(self) -> list[str]:
        """Readable names, in the order of ``parameters()``: input, hidden.i, output."""
        n = len(self.weights)
        layer = ["input"] + [f"hidden.{i}" for i in range(1, n - 1)] + ["output"]
        names = [f"{layer[i]}.weight" for i in range(n)]
        if self.biases is not None:
            names += [f"{layer[i]}.bias" for i in range(n)]
        return names


class Transformer(nn.Module):
    """One-layer transformer of Nanda et al. (2023): tokens [a, b, "="], learned positional
    embeddings, multi-head attention, a ReLU MLP, no LayerNorm, no biases; the prediction is read
    at the last position.

    Computed exactly, but without the per-sample work that one layer and this input make redundant:

    - only the last position's stream is needed after attention (the full causal computation gives
      the same logits there);
    - the last position always holds "=", so its residual stream ``c``, its query, key and value are
      the same for every sample: computed once per step;
    - positions 0 and 1 hold a token ``v`` of the vocabulary, so their keys, values and attention
      scores depend only on (v, position): they are computed for the 2·vocab table rows and gathered
      per sample, as the embedding itself is (a gather, with the sparse backward of
      :class:`TokenInput` on CPU).

    What remains per sample is the 3-way softmax and weighted sum of values (one autograd node,
    :func:`grokking.attend.attend`), and the dense matmuls of W_O, the MLP and the unembedding.
    The logits are multiplied by ``cfg.output_scale`` (Kumar et al. 2024's α; 1 leaves them untouched).
    """

    def __init__(self, cfg: ModelConfig, out_dim: int, vocab: int, gens: list[torch.Generator]):
        super().__init__()
        self.output_scale = cfg.output_scale
        d, h = cfg.d_model, cfg.n_heads
        dh = d // h
        self.vocab = vocab  # input tokens 0..vocab-1; the "=" token is ``vocab``
        self.tokens = TokenInput()
        self.rows = TableRows(vocab, column=True)
        self.n_heads = h
        self.embed = normal_((vocab + 1, d), 1 / math.sqrt(d), gens)
        self.pos_embed = normal_((3, d), 1 / math.sqrt(d), gens)
        self.W_Q = normal_((h, d, dh), 1 / math.sqrt(d), gens)
        self.W_K = normal_((h, d, dh), 1 / math.sqrt(d), gens)
        self.W_V = normal_((h, d, dh), 1 / math.sqrt(d), gens)
        self.W_O = normal_((h, dh, d), 1 / math.sqrt(d), gens)
        self.W_in = normal_((d, cfg.d_mlp), 1 / math.sqrt(d), gens)
        self.W_out = normal_((cfg.d_mlp, d), 1 / math.sqrt(d), gens)
        self.unembed = normal_((d, out_dim), 1 / math.sqrt(out_dim), gens)

    def tables(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What does not depend on the sample: the table rows of x (2N, 1), the values (R, 2V + 1, h·e)
        and scores (R, 2V + 1, h) of every (token, position 0 or 1) row and, last, of "=", and the
        "=" position's residual stream c (R, 1, d)."""
        R, V = self.embed.shape[0], self.vocab
        h, d, e = self.W_Q.shape[1], self.W_Q.shape[2], self.W_Q.shape[3]
        heads = lambda w: w.transpose(1, 2).reshape(R, d, h * e)  # noqa: E731  (R, h, d, e) -> (R, d, h·e)
        # residual streams: one row per (token, position 0 or 1), and the "=" position's
        rows = (self.embed[:, None, :V] + self.pos_embed[:, :2, None]).view(R, 2 * V, d)
        c = (self.embed[:, V] + self.pos_embed[:, 2]).view(R, 1, d)
        q = torch.bmm(c, heads(self.W_Q)).view(R, 1, h, e)
        keys = torch.bmm(torch.cat([rows, c], 1), heads(self.W_K)).view(R, 2 * V + 1, h, e)
        values = torch.bmm(torch.cat([rows, c], 1), heads(self.W_V))  # (R, 2V + 1, h·e)
        scores = (q * keys).sum(-1) / math.sqrt(e)  # (R, 2V + 1, h)
        return self.rows(x), values, scores, c  # table rows: a at position 0, V + b at 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        R, N, V = self.embed.shape[0], x.shape[0], self.vocab
        h, d, e = self.W_Q.shape[1], self.W_Q.shape[2], self.W_Q.shape[3]
        rows_ab, values, scores, c = self.tables(x)
        v_ab = self.tokens(values[:, : 2 * V], rows_ab).view(R, N, 2, h, e)  # rows a and V + b
        s_ab = self.tokens(scores[:, : 2 * V], rows_ab).view(R, N, 2, h)
        z = attend(v_ab, s_ab, scores[:, 2 * V], values[:, 2 * V].view(R, h, e))  # (R, N, h, e)
        out = torch.baddbmm(c, z.view(R, N, h * e), self.W_O.view(R, h * e, d))  # c + z W_O
        out = relu_matmul(torch.bmm(out, self.W_in), self.W_out, out)  # out + relu(out W_in) W_out
        logits = torch.bmm(out, self.unembed)
        return logits if self.output_scale == 1.0 else logits * self.output_scale

    def param_names(self) -> list[str]:
        return [name for name, _ in self.named_parameters()]


def mlp_footprint(cfg: ModelConfig, inputs: int, classes: int) -> tuple[int, int]:
    params = inputs * cfg.width + cfg.width * cfg.width * (cfg.depth - 1) + cfg.width * classes
    return params, 3 * cfg.width * cfg.depth + 6 * classes  # activations, their gradients; logits in 3 dtypes


def check_transformer(cfg: ModelConfig) -> None:
    require(
        cfg.n_heads >= 1 and cfg.d_model % cfg.n_heads == 0,
        "model.n_heads",
        cfg.n_heads,
        f"a positive divisor of d_model={cfg.d_model}",
    )


def transformer_footprint(cfg: ModelConfig, inputs: int, classes: int) -> tuple[int, int]:
    d = cfg.d_model
    params = (classes + 3) * d + 4 * d * d + 2 * d * cfg.d_mlp + d * classes
    return params, 3 * (8 * d + 3 * cfg.d_mlp + 9 * cfg.n_heads) + 6 * classes


MODELS.register(
    "mlp",
    lambda cfg, data, gens: MLP(cfg, data.input_dim, data.num_classes, data.vocab_size, gens),
    params=(
        Param("depth", int, 2, "hidden layers", low=1),
        Param("width", int, 200, "hidden units per layer", low=1),
        Param("bias", bool, False, "biases in every layer"),
    ),
    footprint=mlp_footprint,
)
MODELS.register(
    "transformer",
    lambda cfg, data, gens: Transformer(cfg, data.num_classes, data.vocab_size, gens),
    params=(
        Param("d_model", int, 128, "residual width", low=1),
        Param("n_heads", int, 4, "attention heads (head size d_model / n_heads)", low=1),
        Param("d_mlp", int, 512, "hidden units of the MLP block", low=1),
    ),
    tokens=True,
    check=check_transformer,
    footprint=transformer_footprint,
)


def build_model(cfg: ModelConfig, data: Dataset, seeds: list[int]) -> nn.Module:
    """Build R = len(seeds) replicas; replica r is initialized from ``seeds[r]``. ``init_scale``
    multiplies the initial parameters once (the weights' scale, which training then changes);
    ``output_scale`` multiplies the output at every forward pass (a fixed factor of the function)."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    model = MODELS[cfg.name].build(cfg, data, gens)
    if cfg.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(cfg.init_scale)
    return model
