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
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

// The Fortran BLAS of the library torch links (MKL, OpenBLAS), when it exports one; else at::mm.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

// Row-major C (m×n) = A·B + beta·C, A (m×k) or its transpose stored (k×m), B (k×n) or stored (n×k).
// Called inside the parallel region: BLAS runs single-threaded there.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  constexpr bool is_float = std::is_same_v<T, float>;
  if ((is_float && sgemm_) || (!is_float && dgemm_)) {
    // A row-major matrix is the transpose of the same memory read column-major: C^T = B^T A^T.
    const char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
    const int mm = n, nn = m, kk = k, la = ldb, lb = lda, lc = ldc;
    const T one = 1;
    if constexpr (is_float)
      sgemm_(&ta, &tb, &mm, &nn, &kk, &one, b, &la, a, &lb, &beta, c, &lc);
    else
      dgemm_(&ta, &tb, &mm, &nn, &kk, &one, b, &la, a, &lb, &beta, c, &lc);
    return;
  }
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, int64_t rows, int64_t cols, int64_t ld, bool trans) {
    at::Tensor t = at::from_blob(const_cast<T*>(p), trans ? at::IntArrayRef{cols, rows} : at::IntArrayRef{rows, cols},
                                 {ld, 1}, opts);
    return trans ? t.t() : t;
  };
  at::Tensor out = at::from_blob(c, {m, n}, {ldc, 1}, opts);
  if (beta == T(0))
    at::mm_out(out, view(a, m, k, lda, trans_a), view(b, k, n, ldb, trans_b));
  else
    out.addmm_(view(a, m, k, lda, trans_a), view(b, k, n, ldb, trans_b));
}

template <typename T>
inline T relu(T x) {
  return x < T(0) ? T(0) : x;  // NaN stays NaN, as torch.relu
}

// x = relu(x + bias) in place, row by row (bias: null for none).
template <typename T>
void add_bias_relu_(T* x, const T* bias, int64_t rows, int64_t cols) {
  if (bias == nullptr) {
    for (int64_t i = 0; i < rows * cols; ++i) x[i] = relu<T>(x[i]);
    return;
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) x[i * cols + j] = relu<T>(x[i * cols + j] + bias[j]);
}

// grad[i] = 0 where act[i] <= 0 (threshold_backward at 0; act is the ReLU output).
template <typename T>
void mask_(T* grad, const T* act, int64_t n) {
  for (int64_t i = 0; i < n; ++i) grad[i] = act[i] > T(0) ? grad[i] : T(0);
}

// out[j] += Σ_i x[i, j] over rows (bias gradient).
template <typename T>
void add_column_sums(T* out, const T* x, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[j] += x[i * cols + j];
}

// Row reductions over a buffer padded to whole vectors (with the reduction's neutral element).
template <typename A>
A padded_sum(const A* x, int64_t padded) {
  using Vec = at::vec::Vectorized<A>;
  Vec acc(A(0));
  for (int64_t k = 0; k < padded; k += Vec::size()) acc = acc + Vec::loadu(x + k);
  A lanes[Vec::size()];
  acc.store(lanes);
  A total = 0;
  for (int64_t i = 0; i < Vec::size(); ++i) total += lanes[i];
  return total;
}

template <typename A>
A padded_max(const A* x, int64_t padded) {  // NaN if any entry is NaN, as torch.amax
  using Vec = at::vec::Vectorized<A>;
  Vec acc(-std::numeric_limits<A>::infinity());
  for (int64_t k = 0; k < padded; k += Vec::size()) acc = at::vec::maximum(acc, Vec::loadu(x + k));
  A lanes[Vec::size()];
  acc.store(lanes);
  A m = lanes[0];
  for (int64_t i = 1; i < Vec::size(); ++i) m = std::isnan(lanes[i]) || lanes[i] > m ? lanes[i] : m;
  return m;
}

// Softmax CE of one row, as grokking.fused.SoftmaxCE: m = max z, e = exp(z - m), total = Σ e,
// loss = m + log(total) - z_y, gradient e·(g / total) - g·onehot(y) for the upstream gradient g.
// `e` holds `padded` entries.
template <typename S, typename A>
A softmax_row(const S* z, int64_t c, int64_t padded, int64_t y, A g, A* e, S* grad) {
  using Vec = at::vec::Vectorized<A>;
  for (int64_t k = 0; k < c; ++k) e[k] = static_cast<A>(z[k]);
  for (int64_t k = c; k < padded; ++k) e[k] = -std::numeric_limits<A>::infinity();
  const A m = padded_max(e, padded);
  const Vec vm(m);
  for (int64_t k = 0; k < padded; k += Vec::size()) (Vec::loadu(e + k) - vm).exp().store(e + k);  // pads: 0
  const A total = padded_sum(e, padded);
  const A per = g / total;
  for (int64_t k = 0; k < c; ++k) grad[k] = static_cast<S>(e[k] * per);
  grad[y] = static_cast<S>(e[y] * per - g);
  return m + std::log(total) - static_cast<A>(z[y]);
}

// StableMax CE of one row, as grokking.fused.StableMaxCE: s(x) = (1 + max(x, 0)) / (1 - min(x, 0)),
// loss = log Σ s - log s_y, gradient s'(z)·(g / Σ s) - g·s'(z_y)/s_y·onehot(y), s'(x) = 1/(1 - min(x, 0))².
// `inv_b` and `s` hold `padded` entries.
template <typename S, typename A>
A stablemax_row(const S* z, int64_t c, int64_t padded, int64_t y, A g, A* inv_b, A* s, S* grad) {
  for (int64_t k = 0; k < c; ++k) {
    const A x = static_cast<A>(z[k]);
    inv_b[k] = A(1) / (-std::min(x, A(0)) + A(1));
    s[k] = (std::max(x, A(0)) + A(1)) * inv_b[k];
  }
  for (int64_t k = c; k < padded; ++k) s[k] = 0;
  const A total = padded_sum(s, padded);
  const A per = g / total;
  for (int64_t k = 0; k < c; ++k) grad[k] = static_cast<S>(inv_b[k] * inv_b[k] * per);
  const A slope_y = inv_b[y] * inv_b[y];
  grad[y] = static_cast<S>(slope_y * per - g * slope_y / s[y]);
  return std::log(total) - std::log(s[y]);
}

template <typename S, typename A>
std::vector<at::Tensor> step_impl(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                                  const at::Tensor& x, bool tokens, const at::Tensor& y, int64_t loss_kind,
                                  double grad_scale, int64_t chunk, const at::ScalarType loss_dtype) {
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

  // Per-thread gradient accumulators, one flat buffer per thread: every weight, then every bias.
  const int64_t n_params = has_bias ? 2 * layers : layers;
  std::vector<at::Tensor> params(weights.begin(), weights.end());
  params.insert(params.end(), biases.begin(), biases.end());
  std::vector<int64_t> offset(n_params + 1, 0);
  for (int64_t p = 0; p < n_params; ++p) offset[p + 1] = offset[p] + params[p].numel();
  at::Tensor acc = at::zeros({threads, offset.back()}, opts);
  const A g = static_cast<A>(grad_scale) / static_cast<A>(n);  // ∂(scale · mean loss)/∂loss_n

#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    // Work buffers of one chunk (uninitialized: every entry is written before it is read).
    std::vector<std::unique_ptr<S[]>> act;  // ReLU outputs of the hidden layers
    for (int64_t l = 0; l + 1 < layers; ++l) act.emplace_back(new S[chunk * width[l]]);
    std::unique_ptr<S[]> grad_z(new S[chunk * c]), d(new S[chunk * widest]), d_next(new S[chunk * widest]);
    const int64_t vec = at::vec::Vectorized<A>::size(), padded = (c + vec - 1) / vec * vec;
    std::unique_ptr<A[]> row(new A[2 * padded]);
    S* mine = acc.data_ptr<S>() + t * offset.back();
    std::vector<S*> gw(layers), gb(layers, nullptr);
    for (int64_t l = 0; l < layers; ++l) {
      gw[l] = mine + offset[l];
      if (has_bias) gb[l] = mine + offset[layers + l];
    }
    for (int64_t ch = t; ch < n_chunks; ch += threads) {
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
        S* gi = grad_z.get() + i * c;
        loss_all[r0 + i] = loss_kind == 0
                               ? softmax_row<S, A>(z + i * c, c, padded, yi, g, row.get(), gi)
                               : stablemax_row<S, A>(z + i * c, c, padded, yi, g, row.get(), row.get() + padded, gi);
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
  }
  at::Tensor total = acc[0];
  for (int t = 1; t < threads; ++t) total.add_(acc[t]);
  total.mul_(static_cast<S>(1.0 / grad_scale));
  std::vector<at::Tensor> out{logits, losses};
  for (int64_t p = 0; p < n_params; ++p)
    out.push_back(total.narrow(0, offset[p], offset[p + 1] - offset[p]).view(params[p].sizes()));
  return out;
}

}  // namespace

// weights: (in, out) per layer, contiguous; biases: (1, out) per layer or empty; x: token rows (N, 2)
// int64 (row a and row V + b of the first weight) when `tokens`, else dense inputs (N, in);
// y: labels (N,) int64; loss_kind: 0 softmax, 1 StableMax; loss_dtype: float32 or float64;
// grad_scale: the backward pass runs at this scale (a power of two) and is divided out at the end.
// Returns logits (N, C), per-sample losses (N,), then the gradient of the mean loss with respect to
// every weight, then every bias.
std::vector<at::Tensor> mlp_step(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                                 const at::Tensor& x, bool tokens, const at::Tensor& y, int64_t loss_kind,
                                 at::ScalarType loss_dtype, double grad_scale, int64_t chunk) {
  TORCH_CHECK(weights.size() >= 2, "mlp_step: at least two layers");
  TORCH_CHECK(loss_kind == 0 || loss_kind == 1, "mlp_step: loss_kind must be 0 (softmax) or 1 (StableMax)");
  TORCH_CHECK(chunk > 0, "mlp_step: chunk must be positive");
  const auto dtype = weights[0].scalar_type();
  for (const auto& t : weights) TORCH_CHECK(t.is_contiguous() && t.dim() == 2 && t.scalar_type() == dtype);
  for (const auto& t : biases) TORCH_CHECK(t.is_contiguous() && t.scalar_type() == dtype);
  TORCH_CHECK(biases.empty() || biases.size() == weights.size(), "mlp_step: one bias per layer or none");
  TORCH_CHECK(x.is_contiguous() && y.is_contiguous() && y.scalar_type() == at::kLong);
  TORCH_CHECK(tokens ? x.scalar_type() == at::kLong : x.scalar_type() == dtype, "mlp_step: input dtype");
  if (dtype == at::kFloat && loss_dtype == at::kFloat)
    return step_impl<float, float>(weights, biases, x, tokens, y, loss_kind, grad_scale, chunk, loss_dtype);
  if (dtype == at::kFloat && loss_dtype == at::kDouble)
    return step_impl<float, double>(weights, biases, x, tokens, y, loss_kind, grad_scale, chunk, loss_dtype);
  if (dtype == at::kDouble && loss_dtype == at::kDouble)
    return step_impl<double, double>(weights, biases, x, tokens, y, loss_kind, grad_scale, chunk, loss_dtype);
  if (dtype == at::kDouble && loss_dtype == at::kFloat)
    return step_impl<double, float>(weights, biases, x, tokens, y, loss_kind, grad_scale, chunk, loss_dtype);
  TORCH_CHECK(false, "mlp_step: model and loss dtypes must be float32 or float64");
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("mlp_step", &mlp_step, "one MLP training step (see mlp_step.cpp)"); }
