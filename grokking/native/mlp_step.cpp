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
                                  const std::vector<at::Tensor>& grads, bool use_bands, bool* finite, double z_coef,
                                  double output_scale) {
  // A float32 model runs its backward pass in row bands (common.h); a float64 model in one band at
  // the backward scale, whose subnormals (below 2^-1022) no gradient reaches.
  constexpr bool banded = std::is_same_v<S, float>;
  constexpr int bands = banded ? kBands : 1;
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
  // Weights' lines of zeros and subnormals (common.h, TinyLines): the GEMMs read copies without them.
  std::vector<TinyLines> tiny;
  std::vector<const S*> w_fwd(w), w_bwd(w);
  for (int64_t l = 0; l < layers; ++l) {
    tiny.emplace_back(TinyLines::template make<S>(weights[l], l > 0 || !tokens, l > 0));  // a token gather has no GEMM
    if (tiny[l].without_cols.defined()) w_fwd[l] = tiny[l].without_cols.template data_ptr<S>();
    if (tiny[l].without_rows.defined()) w_bwd[l] = tiny[l].without_rows.template data_ptr<S>();
  }
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), n_chunks));

  // gradients, band by band: every weight, then every bias
  std::vector<std::vector<int64_t>> shapes;
  for (int q = 0; q < bands; ++q)
    for (const auto* group : {&weights, &biases})
      for (const auto& t : *group) shapes.push_back(t.sizes().vec());
  const size_t params = weights.size() + biases.size();
  const ThreadSums<S> sums(shapes, threads, opts);
  std::vector<uint8_t> used(static_cast<size_t>(threads) * bands, 0);  // band q summed into by thread t
  std::vector<uint8_t> bad(threads, 0);  // a non-finite gradient in thread t's slice
  // ∂(scale · mean loss)/∂loss_n, times the output scale: the logits' gradients are then those of the
  // unscaled output (the backward pass of its multiplication by output_scale)
  const A g = static_cast<A>(grad_scale) / static_cast<A>(n) * static_cast<A>(output_scale);
  const S alpha = static_cast<S>(output_scale);
  const int top = std::ilogb(static_cast<double>(g)) + 1;
  const std::vector<S*> out = sums.outputs(0, grads);
  std::vector<double> unscale(bands);  // band q's gradients × this: the gradients
  for (int q = 0; q < bands; ++q) unscale[q] = std::ldexp(1 / grad_scale, -kBandWidth * q);

#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    const int t = thread_index(), team = team_size();
    // Work buffers of one chunk (uninitialized: every entry is written before it is read).
    std::vector<Buffer<S>> act, act_sorted;  // ReLU outputs of the hidden layers (and sorted by band)
    for (int64_t l = 0; l + 1 < layers; ++l) act.push_back(buffer<S>(chunk * width[l]));
    Buffer<S> grad_z = buffer<S>(chunk * c), d = buffer<S>(chunk * widest), d_next = buffer<S>(chunk * widest);
    const int64_t vec = at::vec::Vectorized<A>::size(), padded = (c + vec - 1) / vec * vec;
    static_assert(at::vec::Vectorized<A>::size() % at::vec::Vectorized<double>::size() == 0);
    Buffer<A> row = buffer<A>(2 * padded);
    Buffer<double> v = buffer<double>(padded), tmp = buffer<double>(padded);  // banded_loss_row's
    std::vector<int> band(chunk);
    std::vector<int64_t> order(chunk), idx_sorted(tokens ? 2 * chunk : 0);
    Buffer<S> grad_z_sorted, x_sorted;
    // A band's buffer is zeroed when the thread first sums into it (in its own cache); the buffers
    // of threads the team lacks stay unused, and unused buffers are never read.
    auto use_band = [&](int q) {
      uint8_t& u = used[static_cast<size_t>(t) * bands + q];
      if (!u) {
        std::fill_n(sums.piece(t, q * params), sums.piece(t, (q + 1) * params) - sums.piece(t, q * params), S(0));
        u = 1;
      }
    };
    for (int64_t ch = t; ch < n_chunks; ch += team) {
      const int64_t r0 = ch * chunk, rows = std::min(chunk, n - r0);
      // Forward. First layer: token gather w[a] + w[V + b], or a dense matmul.
      S* a0 = act[0].get();
      const int64_t h0 = width[0];
      if (tokens) {
        const int64_t* idx = x.data_ptr<int64_t>() + 2 * r0;
        for (int64_t i = 0; i < rows; ++i) {
          const S* u = w[0] + idx[2 * i] * h0;
          const S* vv = w[0] + idx[2 * i + 1] * h0;
          S* o = a0 + i * h0;
          if (has_bias)
            for (int64_t j = 0; j < h0; ++j) o[j] = relu<S>(u[j] + vv[j] + b[0][j]);
          else
            for (int64_t j = 0; j < h0; ++j) o[j] = relu<S>(u[j] + vv[j]);
        }
      } else {
        gemm<S>(false, false, rows, h0, d_in, x.data_ptr<S>() + r0 * d_in, d_in, w_fwd[0], h0, S(0), a0, h0);
        tiny[0].columns(a0, x.data_ptr<S>() + r0 * d_in, w[0], rows, d_in, h0);
        add_bias_relu_(a0, b[0], rows, h0);
      }
      for (int64_t l = 1; l < layers; ++l) {
        const int64_t in = width[l - 1], out_w = width[l];
        S* o = l + 1 < layers ? act[l].get() : z_all + r0 * c;
        gemm<S>(false, false, rows, out_w, in, act[l - 1].get(), in, w_fwd[l], out_w, S(0), o, out_w);
        tiny[l].columns(o, act[l - 1].get(), w[l], rows, in, out_w);
        if (l + 1 < layers) {
          add_bias_relu_(o, b[l], rows, out_w);
        } else if (has_bias) {
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < out_w; ++j) o[i * out_w + j] += b[l][j];
        }
        if (l + 1 == layers && output_scale != 1.0)  // the model's output × output_scale, in S
          for (int64_t k = 0; k < rows * out_w; ++k) o[k] = o[k] * alpha;
      }
      // Loss and its gradient with respect to the logits (band by band for a float32 model).
      const S* z = z_all + r0 * c;
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t yi = y_all[r0 + i];
        if constexpr (banded) {
          band[i] = banded_loss_row<A>(use_bands, loss_kind, z + i * c, c, padded, yi, g, top, row.get(), v.get(), tmp.get(),
                                       grad_z.get() + i * c, loss_all + r0 + i, static_cast<A>(z_coef));
        } else {
          band[i] = 0;
          loss_all[r0 + i] =
              loss_row<S, A>(loss_kind, z + i * c, c, padded, yi, g, row.get(), grad_z.get() + i * c, static_cast<A>(z_coef));
        }
      }
      // The rows in band order (stable; rows of band -1 left out): when they are not in it already,
      // the logits' gradients, the hidden activations and the inputs are copied into that order.
      int64_t count[kBands + 1] = {};
      for (int64_t i = 0; i < rows; ++i) ++count[band[i] + 1];
      bool in_order = count[0] == 0;
      for (int64_t i = 1; i < rows && in_order; ++i) in_order = band[i - 1] <= band[i];
      int64_t first[kBands + 1];  // first sorted row of each band
      first[0] = 0;
      for (int q = 0; q < bands; ++q) first[q + 1] = first[q] + count[q + 1];
      const S* gz = grad_z.get();
      std::vector<const S*> acts(act.size());
      for (size_t l = 0; l < act.size(); ++l) acts[l] = act[l].get();
      const int64_t* idx = tokens ? x.data_ptr<int64_t>() + 2 * r0 : nullptr;
      const S* xs = tokens ? nullptr : x.data_ptr<S>() + r0 * d_in;
      if (!in_order) {
        if (!grad_z_sorted) {
          grad_z_sorted = buffer<S>(chunk * c);
          for (int64_t l = 0; l + 1 < layers; ++l) act_sorted.push_back(buffer<S>(chunk * width[l]));
          if (!tokens) x_sorted = buffer<S>(chunk * d_in);
        }
        int64_t next[kBands];
        for (int q = 0; q < bands; ++q) next[q] = first[q];
        for (int64_t i = 0; i < rows; ++i)
          if (band[i] >= 0) order[next[band[i]]++] = i;
        const int64_t kept = first[bands];
        auto gather = [&](S* to, const S* from, int64_t cols) {
          for (int64_t k = 0; k < kept; ++k) std::copy_n(from + order[k] * cols, cols, to + k * cols);
        };
        gather(grad_z_sorted.get(), gz, c);
        gz = grad_z_sorted.get();
        for (size_t l = 0; l < act.size(); ++l) {
          gather(act_sorted[l].get(), acts[l], width[l]);
          acts[l] = act_sorted[l].get();
        }
        if (tokens) {
          for (int64_t k = 0; k < kept; ++k) {
            idx_sorted[2 * k] = idx[2 * order[k]];
            idx_sorted[2 * k + 1] = idx[2 * order[k] + 1];
          }
          idx = idx_sorted.data();
        } else {
          gather(x_sorted.get(), xs, d_in);
          xs = x_sorted.get();
        }
      }
      // Backward, band by band, from the output layer down.
      for (int q = 0; q < bands; ++q) {
        const int64_t s0 = first[q], n_rows = first[q + 1] - first[q];
        if (n_rows == 0) continue;
        use_band(q);
        std::vector<S*> gw(layers), gb(layers, nullptr);
        for (int64_t l = 0; l < layers; ++l) {
          gw[l] = sums.piece(t, q * params + l);
          if (has_bias) gb[l] = sums.piece(t, q * params + layers + l);
        }
        const S* upstream = gz + s0 * c;
        for (int64_t l = layers - 1; l >= 1; --l) {
          const int64_t in = width[l - 1], out_w = width[l];
          const S* a_in = acts[l - 1] + s0 * in;
          gemm<S>(true, false, in, out_w, n_rows, a_in, in, upstream, out_w, S(1), gw[l], out_w);  // ∂W += aᵀ·δ
          if (has_bias) add_column_sums(gb[l], upstream, n_rows, out_w);
          gemm<S>(false, true, n_rows, in, out_w, upstream, out_w, w_bwd[l], out_w, S(0), d_next.get(), in);  // δ·Wᵀ
          tiny[l].rows_of(d_next.get(), upstream, w[l], a_in, n_rows, in, out_w);
          mask_(d_next.get(), a_in, n_rows * in);
          std::swap(d, d_next);
          upstream = d.get();
        }
        if (tokens) {  // ∂w[a] += δ, ∂w[V + b] += δ
          const int64_t* ib = idx + 2 * s0;
          for (int64_t i = 0; i < n_rows; ++i) {
            const S* di = upstream + i * h0;
            S* u = gw[0] + ib[2 * i] * h0;
            S* vv = gw[0] + ib[2 * i + 1] * h0;
            for (int64_t j = 0; j < h0; ++j) u[j] += di[j];
            for (int64_t j = 0; j < h0; ++j) vv[j] += di[j];
          }
        } else {
          gemm<S>(true, false, d_in, h0, n_rows, xs + s0 * d_in, d_in, upstream, h0, S(1), gw[0], h0);
        }
        if (has_bias) add_column_sums(gb[0], upstream, n_rows, h0);
      }
    }
    // The gradients: each band's threads' sums (in thread order), unscaled and added in double in
    // band order; each thread writes a slice of every one.
#ifdef _OPENMP
#pragma omp barrier
#endif
    std::vector<int> live;  // bands that some thread summed into
    for (int q = 0; q < bands; ++q)
      for (int tt = 0; tt < threads; ++tt)
        if (used[static_cast<size_t>(tt) * bands + q]) {
          live.push_back(q);
          break;
        }
    for (size_t i = 0; i < out.size(); ++i) {
      const int64_t numel = grads[i].numel(), begin = numel * t / team, end = numel * (t + 1) / team;
      S* o = out[i];
      if (live.empty()) {
        std::fill(o + begin, o + end, S(0));
        continue;
      }
      if (live.size() == 1) {  // one band (every early epoch): the threads' sums, then the exact unscaling
        const int q = live[0];
        bool any = false;
        for (int tt = 0; tt < threads; ++tt) {
          if (!used[static_cast<size_t>(tt) * bands + q]) continue;
          const S* p = sums.piece(tt, q * params + i);
          if (!any)
            std::copy(p + begin, p + end, o + begin);
          else
            for (int64_t j = begin; j < end; ++j) o[j] += p[j];
          any = true;
        }
        const double f = unscale[q];
        double nan_if_not_finite = 0, largest = 0;  // checked in double: no subnormal float operand
        for (int64_t j = begin; j < end; ++j) {
          const double r = static_cast<double>(o[j]) * f;
          o[j] = static_cast<S>(r);
          nan_if_not_finite += r * 0.0;
          largest = std::max(largest, std::abs(r));
        }
        bad[t] |= std::isnan(nan_if_not_finite) || largest > static_cast<double>(std::numeric_limits<S>::max());
        continue;
      }
      for (int64_t j = begin; j < end; ++j) {  // per element: each band's thread-order sum, then the bands in double
        double total = 0;
        bool first_band = true;
        for (const int q : live) {
          S part = 0;
          bool any = false;
          for (int tt = 0; tt < threads; ++tt) {
            if (!used[static_cast<size_t>(tt) * bands + q]) continue;
            const S value = sums.piece(tt, q * params + i)[j];
            part = any ? part + value : value;
            any = true;
          }
          const double scaled = static_cast<double>(part) * unscale[q];
          total = first_band ? scaled : total + scaled;
          first_band = false;
        }
        o[j] = static_cast<S>(total);
        bad[t] |= !std::isfinite(o[j]);
      }
    }
  }
  *finite = std::none_of(bad.begin(), bad.end(), [](uint8_t b) { return b != 0; });
  return {logits, losses};
}

}  // namespace

// weights: (in, out) per layer, contiguous; biases: (1, out) per layer or empty; x: token rows (N, 2)
// int64 (row a and row V + b of the first weight) when `tokens`, else dense inputs (N, in);
// y: labels (N,) int64; loss_kind: 0 softmax, 1 StableMax, + 2 for the SC intervention; loss_dtype: float32 or float64;
// z_coef: the z-loss weight of a softmax loss (0: none); output_scale: the factor of the model's output (1: none);
// grad_scale: the backward pass runs at this scale (a power of two), unscaled at the end; grads:
// where the gradients of the mean loss with respect to every weight, then every bias, are written
// (contiguous, each of its parameter's size and dtype). Returns logits (N, C) and per-sample losses (N,).
std::vector<at::Tensor> mlp_step(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                                 const at::Tensor& x, bool tokens, const at::Tensor& y, int64_t loss_kind,
                                 at::ScalarType loss_dtype, double grad_scale, int64_t chunk,
                                 const std::vector<at::Tensor>& grads, double z_coef, double output_scale) {
  TORCH_CHECK(weights.size() >= 2, "mlp_step: at least two layers");
  TORCH_CHECK(std::isfinite(output_scale) && output_scale > 0, "mlp_step: output_scale must be positive");
  TORCH_CHECK(z_coef >= 0 && (z_coef == 0 || !(loss_kind & kStableMax)), "mlp_step: z_coef is a softmax loss's, >= 0");
  TORCH_CHECK(valid_loss_kind(loss_kind), "mlp_step: loss_kind must be 0 (softmax) or 1 (StableMax), plus 2 for the SC intervention");
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
    // Bands scale rows up by up to 2^(kBandWidth · band), so that a row's largest gradient can reach
    // 2^(kBandWidth + 1) times the upstream gradient of a sample: where that overflows (activations
    // or weights beyond ~2^40 · what the backward scale allows) the step is computed again with
    // every row at the backward scale, as it was before the bands.
    bool finite = true;
    auto out = step_impl<S, A>(w, bs, xa, tokens, y, loss_kind, grad_scale, rows, loss_dtype, grads, row_bands(),
                               &finite, z_coef, output_scale);
    if (!finite && row_bands() && std::is_same_v<S, float>)
      out = step_impl<S, A>(w, bs, xa, tokens, y, loss_kind, grad_scale, rows, loss_dtype, grads, false, &finite,
                            z_coef, output_scale);
    return out;
  });
}

}  // namespace grokking_native
