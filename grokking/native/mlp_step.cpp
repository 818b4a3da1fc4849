// One full-batch training step of the ReLU MLP with a softmax or StableMax cross-entropy, on CPU:
// forward pass, per-sample losses, and every parameter gradient, computed chunk by chunk.
//
// The batch is cut into chunks of a few hundred samples; each thread takes every T-th chunk and
// runs the whole forward and backward pass of it with single-threaded GEMMs, so that a chunk's
// activations stay in the core's L2 cache between the matmuls and the elementwise work around them
// (ReLU, the loss and its gradient, the ReLU masks, the token gather and its scatter). Weight and
// bias gradients are accumulated per thread and added in thread order at the end: deterministic
// for a given thread count. The arithmetic is that of grokking.fused / grokking.models: the same
// formulas in the same dtypes (the loss in its own dtype, the rest in the model's), only the
// summation order of the reductions over samples differs.
#include "common.h"

namespace grokking_native {
namespace {

template <typename S, typename A>
std::vector<at::Tensor> step_impl(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                                  const at::Tensor& x, bool tokens, const at::Tensor& y, int64_t loss_kind,
                                  double grad_scale, int64_t chunk, const at::ScalarType loss_dtype,
                                  const std::vector<at::Tensor>& grads) {
  const int64_t layers = static_cast<int64_t>(weights.size());
  const bool has_bias = !biases.empty();
  const int64_t n = x.size(0);
  const int64_t c = weights.back().size(1);
  std::vector<int64_t> width(layers);  // output width of each layer
  int64_t widest = 0;
  for (int64_t l = 0; l < layers; ++l) {
    width[l] = weights[l].size(1);
    widest = std::max(widest, width[l]);
  }
  const auto opts = weights[0].options();
  at::Tensor logits = at::empty({n, c}, opts);
  at::Tensor losses = at::empty({n}, opts.dtype(loss_dtype));
  S* z_all = logits.data_ptr<S>();
  A* loss_all = losses.data_ptr<A>();
  const int64_t* y_all = y.data_ptr<int64_t>();
  std::vector<const S*> w(layers), b(layers, nullptr);
  for (int64_t l = 0; l < layers; ++l) {
    w[l] = weights[l].data_ptr<S>();
    if (has_bias) b[l] = biases[l].data_ptr<S>();
  }
  const int64_t d_in = weights[0].size(0);
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), n_chunks));

  std::vector<std::vector<int64_t>> shapes;  // gradients: every weight, then every bias
  for (const auto* group : {&weights, &biases})
    for (const auto& t : *group) shapes.push_back(t.sizes().vec());
  const ThreadSums<S> sums(shapes, threads, opts);
  const A g = static_cast<A>(grad_scale) / static_cast<A>(n);  // ∂(scale · mean loss)/∂loss_n
  const S unscale = static_cast<S>(1 / grad_scale);
  const std::vector<S*> out = sums.outputs(0, grads);

#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    const int t = thread_index(), team = team_size();
    sums.zero(t, team);
    // Work buffers of one chunk (uninitialized: every entry is written before it is read).
    std::vector<Buffer<S>> act;  // ReLU outputs of the hidden layers
    for (int64_t l = 0; l + 1 < layers; ++l) act.push_back(buffer<S>(chunk * width[l]));
    Buffer<S> grad_z = buffer<S>(chunk * c), d = buffer<S>(chunk * widest), d_next = buffer<S>(chunk * widest);
    const int64_t vec = at::vec::Vectorized<A>::size(), padded = (c + vec - 1) / vec * vec;
    Buffer<A> row = buffer<A>(2 * padded);
    std::vector<S*> gw(layers), gb(layers, nullptr);
    for (int64_t l = 0; l < layers; ++l) {
      gw[l] = sums.piece(t, l);
      if (has_bias) gb[l] = sums.piece(t, layers + l);
    }
    for (int64_t ch = t; ch < n_chunks; ch += team) {
      const int64_t r0 = ch * chunk, rows = std::min(chunk, n - r0);
      // Forward. First layer: token gather w[a] + w[V + b], or a dense matmul.
      S* a0 = act[0].get();
      const int64_t h0 = width[0];
      if (tokens) {
        const int64_t* idx = x.data_ptr<int64_t>() + 2 * r0;
        for (int64_t i = 0; i < rows; ++i) {
          const S* u = w[0] + idx[2 * i] * h0;
          const S* v = w[0] + idx[2 * i + 1] * h0;
          S* o = a0 + i * h0;
          if (has_bias)
            for (int64_t j = 0; j < h0; ++j) o[j] = relu<S>(u[j] + v[j] + b[0][j]);
          else
            for (int64_t j = 0; j < h0; ++j) o[j] = relu<S>(u[j] + v[j]);
        }
      } else {
        gemm<S>(false, false, rows, h0, d_in, x.data_ptr<S>() + r0 * d_in, d_in, w[0], h0, S(0), a0, h0);
        add_bias_relu_(a0, b[0], rows, h0);
      }
      for (int64_t l = 1; l < layers; ++l) {
        const int64_t in = width[l - 1], out = width[l];
        S* o = l + 1 < layers ? act[l].get() : z_all + r0 * c;
        gemm<S>(false, false, rows, out, in, act[l - 1].get(), in, w[l], out, S(0), o, out);
        if (l + 1 < layers) {
          add_bias_relu_(o, b[l], rows, out);
        } else if (has_bias) {
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < out; ++j) o[i * out + j] += b[l][j];
        }
      }
      // Loss and its gradient with respect to the logits.
      const S* z = z_all + r0 * c;
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t yi = y_all[r0 + i];
        loss_all[r0 + i] = loss_row<S, A>(loss_kind, z + i * c, c, padded, yi, g, row.get(), grad_z.get() + i * c);
      }
      // Backward, from the output layer down.
      const S* upstream = grad_z.get();
      for (int64_t l = layers - 1; l >= 1; --l) {
        const int64_t in = width[l - 1], out = width[l];
        const S* a_in = act[l - 1].get();
        gemm<S>(true, false, in, out, rows, a_in, in, upstream, out, S(1), gw[l], out);  // ∂W += aᵀ·δ
        if (has_bias) add_column_sums(gb[l], upstream, rows, out);
        gemm<S>(false, true, rows, in, out, upstream, out, w[l], out, S(0), d_next.get(), in);  // δ·Wᵀ
        mask_(d_next.get(), a_in, rows * in);
        std::swap(d, d_next);
        upstream = d.get();
      }
      if (tokens) {  // ∂w[a] += δ, ∂w[V + b] += δ
        const int64_t* idx = x.data_ptr<int64_t>() + 2 * r0;
        for (int64_t i = 0; i < rows; ++i) {
          const S* di = upstream + i * h0;
          S* u = gw[0] + idx[2 * i] * h0;
          S* v = gw[0] + idx[2 * i + 1] * h0;
          for (int64_t j = 0; j < h0; ++j) u[j] += di[j];
          for (int64_t j = 0; j < h0; ++j) v[j] += di[j];
        }
      } else {
        gemm<S>(true, false, d_in, h0, rows, x.data_ptr<S>() + r0 * d_in, d_in, upstream, h0, S(1), gw[0], h0);
      }
      if (has_bias) add_column_sums(gb[0], upstream, rows, h0);
    }
    // The gradients: the threads' sums, unscaled, each thread writing a slice of every one.
#ifdef _OPENMP
#pragma omp barrier
#endif
    for (size_t i = 0; i < out.size(); ++i) sums.total_into(i, out[i], unscale, t, team);
  }
  return {logits, losses};
}

}  // namespace

// weights: (in, out) per layer, contiguous; biases: (1, out) per layer or empty; x: token rows (N, 2)
// int64 (row a and row V + b of the first weight) when `tokens`, else dense inputs (N, in);
// y: labels (N,) int64; loss_kind: 0 softmax, 1 StableMax; loss_dtype: float32 or float64;
// grad_scale: the backward pass runs at this scale (a power of two), unscaled at the end; grads:
// where the gradients of the mean loss with respect to every weight, then every bias, are written
// (contiguous, each of its parameter's size and dtype). Returns logits (N, C) and per-sample losses (N,).
std::vector<at::Tensor> mlp_step(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                                 const at::Tensor& x, bool tokens, const at::Tensor& y, int64_t loss_kind,
                                 at::ScalarType loss_dtype, double grad_scale, int64_t chunk,
                                 const std::vector<at::Tensor>& grads) {
  TORCH_CHECK(weights.size() >= 2, "mlp_step: at least two layers");
  TORCH_CHECK(loss_kind == 0 || loss_kind == 1, "mlp_step: loss_kind must be 0 (softmax) or 1 (StableMax)");
  TORCH_CHECK(chunk > 0, "mlp_step: chunk must be positive");
  const auto dtype = weights[0].scalar_type();
  for (const auto& t : weights) TORCH_CHECK(t.is_contiguous() && t.dim() == 2 && t.scalar_type() == dtype);
  for (const auto& t : biases) TORCH_CHECK(t.is_contiguous() && t.scalar_type() == dtype);
  TORCH_CHECK(biases.empty() || biases.size() == weights.size(), "mlp_step: one bias per layer or none");
  TORCH_CHECK(grads.size() == weights.size() + biases.size(), "mlp_step: one gradient output per parameter");
  TORCH_CHECK(x.is_contiguous() && y.is_contiguous() && y.scalar_type() == at::kLong);
  TORCH_CHECK(tokens ? x.scalar_type() == at::kLong : x.scalar_type() == dtype, "mlp_step: input dtype");
  // shapes and index ranges: the loops below trust them
  TORCH_CHECK(x.dim() == 2 && x.size(0) > 0, "mlp_step: x must be a non-empty (N, D) batch");
  TORCH_CHECK(y.dim() == 1 && y.size(0) == x.size(0), "mlp_step: y must hold one label per sample of x");
  for (size_t l = 1; l < weights.size(); ++l)
    TORCH_CHECK(weights[l].size(0) == weights[l - 1].size(1), "mlp_step: layer ", l, "'s input width ",
                weights[l].size(0), " is not layer ", l - 1, "'s output width ", weights[l - 1].size(1));
  for (size_t l = 0; l < biases.size(); ++l)
    TORCH_CHECK(biases[l].numel() == weights[l].size(1), "mlp_step: bias ", l, " does not match its layer");
  if (tokens) {
    TORCH_CHECK(x.size(1) == 2, "mlp_step: token input must be (N, 2) rows of the first layer");
    check_indices(x, weights[0].size(0), "mlp_step: token row");
  } else {
    TORCH_CHECK(x.size(1) == weights[0].size(0), "mlp_step: x has ", x.size(1), " features; the first layer takes ",
                weights[0].size(0));
  }
  check_indices(y, weights.back().size(1), "mlp_step: label");
  std::vector<at::Tensor> w, bs;  // 64-byte aligned (see common.h)
  for (const auto& t : weights) w.push_back(aligned(t));
  for (const auto& t : biases) bs.push_back(aligned(t));
  const at::Tensor xa = tokens ? x : aligned(x);
  const int64_t rows = chunk_rows(chunk);
  return dispatch(dtype, loss_dtype, "mlp_step", [&]<typename S, typename A>() {
    return step_impl<S, A>(w, bs, xa, tokens, y, loss_kind, grad_scale, rows, loss_dtype, grads);
  });
}

}  // namespace grokking_native
