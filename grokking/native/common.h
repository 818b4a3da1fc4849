// Shared pieces of the C++ training steps (mlp_step.cpp, transformer_step.cpp): row-major GEMM
// on one core, ReLU and its mask, and the per-row softmax and StableMax cross-entropy with their
// gradient, computed as grokking.fused computes them.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// The Fortran BLAS of the library torch links (MKL, OpenBLAS), when it exports one; else at::mm.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace grokking_native {

// Every array a GEMM sees starts on a 64-byte boundary: MKL documents that results can depend on
// the alignment of its inputs, and a run must not depend on where the heap happened to put them.
constexpr int64_t kAlign = 64;

inline int64_t round_up(int64_t n, int64_t k) { return (n + k - 1) / k * k; }

struct FreeAligned {
  void operator()(void* p) const { std::free(p); }
};

template <typename T>
using Buffer = std::unique_ptr<T[], FreeAligned>;

// An uninitialized, 64-byte aligned array of n values.
template <typename T>
Buffer<T> buffer(int64_t n) {
  const auto bytes = static_cast<size_t>(round_up(std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(T)), kAlign));
  T* p = static_cast<T*>(std::aligned_alloc(kAlign, bytes));
  TORCH_CHECK(p != nullptr, "grokking native: out of memory");
  return Buffer<T>(p);
}

// t itself when its data starts on a 64-byte boundary, else an aligned copy.
inline at::Tensor aligned(const at::Tensor& t) {
  return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % kAlign == 0 ? t : t.clone();
}

// Raises (a RuntimeError in Python) unless every entry of the contiguous int64 tensor t lies in
// [0, bound): the kernels index arrays with labels and token rows, and must never read past them.
inline void check_indices(const at::Tensor& t, int64_t bound, const char* what) {
  TORCH_CHECK(t.is_contiguous() && t.scalar_type() == at::kLong, what, ": expected a contiguous int64 tensor");
  const int64_t* p = t.data_ptr<int64_t>();
  const int64_t n = t.numel();
  int64_t bad = -1;
  for (int64_t i = 0; i < n && bad < 0; ++i)
    if (p[i] < 0 || p[i] >= bound) bad = i;
  TORCH_CHECK(bad < 0, what, " ", (bad < 0 ? 0 : p[bad]), " at position ", bad, " is outside [0, ", bound, ")");
}

// Samples per chunk, a multiple of 16: a chunk's rows of any float or double array then start on a
// 64-byte boundary.
inline int64_t chunk_rows(int64_t chunk) { return round_up(std::max<int64_t>(chunk, 1), 16); }

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// The size of the running team: OpenMP may grant fewer threads than asked for (OMP_DYNAMIC), and
// every chunk must still be computed.
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Per-thread sums of gradients: one flat buffer per thread (zeroed by zero()) holding a piece per shape, each
// piece starting on a 64-byte boundary, added in thread order at the end.
template <typename S>
class ThreadSums {
 public:
  ThreadSums(std::vector<std::vector<int64_t>> shapes, int threads, const at::TensorOptions& opts)
      : shapes_(std::move(shapes)), offset_{0} {
    for (const auto& s : shapes_) offset_.push_back(offset_.back() + round_up(numel(s), 16));
    sums_ = at::empty({threads, offset_.back()}, opts);
    base_ = sums_.data_ptr<S>();
  }

  // Called by thread t of a team of `team` first thing in the parallel region: zeroes its own
  // buffer, in its own cache (and the buffers of threads the team lacks, every one of which is read).
  void zero(int t, int team) const {
    for (int64_t b = t; b < sums_.size(0); b += team) std::fill_n(base_ + b * offset_.back(), offset_.back(), S(0));
  }

  S* piece(int thread, size_t i) const { return base_ + thread * offset_.back() + offset_[i]; }

  // The threads' sums of pieces [first, first + count), in thread order, as tensors of their shapes.
  std::vector<at::Tensor> totals(size_t first, size_t count) const {
    const int64_t begin = offset_[first], length = offset_[first + count] - begin;
    at::Tensor sum = sums_[0].narrow(0, begin, length);
    for (int64_t t = 1; t < sums_.size(0); ++t) sum.add_(sums_[t].narrow(0, begin, length));
    std::vector<at::Tensor> out;
    for (size_t i = first; i < first + count; ++i)
      out.push_back(sums_[0].narrow(0, offset_[i], numel(shapes_[i])).view(shapes_[i]));
    return out;
  }

  // The data of outs, which receive pieces first, first + 1, ...: each checked to be contiguous and
  // of its piece's size and dtype.
  std::vector<S*> outputs(size_t first, const std::vector<at::Tensor>& outs) const {
    std::vector<S*> data;
    for (size_t i = 0; i < outs.size(); ++i) {
      const at::Tensor& out = outs[i];
      TORCH_CHECK(out.is_contiguous() && out.numel() == numel(shapes_[first + i]) &&
                      out.scalar_type() == sums_.scalar_type(),
                  "gradient output: a contiguous tensor of the gradient's size and dtype");
      data.push_back(out.data_ptr<S>());
    }
    return data;
  }

  // scale × the threads' sum of piece i (added in thread order), written into out: the part-th of
  // `parts` slices, so that every thread of a team can write its own. A power-of-two scale is
  // exact, as after a sum at the backward scale.
  void total_into(size_t i, S* out, S scale, int part = 0, int parts = 1) const {
    const int64_t n = numel(shapes_[i]), begin = n * part / parts, end = n * (part + 1) / parts;
    const S* first = piece(0, i);
    for (int64_t j = begin; j < end; ++j) out[j] = first[j];
    for (int64_t t = 1; t < sums_.size(0); ++t) {
      const S* more = piece(static_cast<int>(t), i);
      for (int64_t j = begin; j < end; ++j) out[j] += more[j];
    }
    for (int64_t j = begin; j < end; ++j) out[j] *= scale;
  }

 private:
  static int64_t numel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int64_t> offset_;
  at::Tensor sums_;
  S* base_;
};

// f.template operator()<S, A>() for the model dtype S and the loss dtype A, each float or double.
template <typename F>
auto dispatch(at::ScalarType model, at::ScalarType loss, const char* name, F&& f) {
  const auto floating = [](at::ScalarType t) { return t == at::kFloat || t == at::kDouble; };
  TORCH_CHECK(floating(model) && floating(loss), name, ": model and loss dtypes must be float32 or float64");
  if (model == at::kFloat)
    return loss == at::kFloat ? f.template operator()<float, float>() : f.template operator()<float, double>();
  return loss == at::kFloat ? f.template operator()<double, float>() : f.template operator()<double, double>();
}

// Whether gemm may call the BLAS symbols directly (a switch for testing the at::mm path).
inline bool& direct_blas() {
  static bool on = true;
  return on;
}

// Row-major C (m×n) = A·B + beta·C, A (m×k) or its transpose stored (k×m), B (k×n) or stored (n×k).
// Called inside the parallel region: BLAS runs single-threaded there.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  constexpr bool is_float = std::is_same_v<T, float>;
  if (direct_blas() && ((is_float && sgemm_) || (!is_float && dgemm_))) {
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

// Lines of a float32 weight (in, out) made only of zeros and subnormals, with at least one
// subnormal: its columns (the outputs of the product a·W they feed) and its rows (the outputs of
// δ·Wᵀ). A GEMM whose output is subnormal takes a microcode assist per multiply-add, up to ~50×
// slower; such lines appear when weight decay shrinks the weights of dead ReLU units for hundreds
// of epochs. Their outputs are computed apart, in double (TinyLines::column / ::row), and the GEMM
// runs on a copy of the weight with them zeroed.
struct TinyLines {
  std::vector<int64_t> cols, rows;
  at::Tensor without_cols, without_rows;  // the weight with those columns / rows zeroed (undefined: none)

  template <typename S>
  static TinyLines make(const at::Tensor& weight, bool want_cols, bool want_rows) {
    TinyLines t;
    t.find<S>(weight, want_cols, want_rows);
    return t;
  }

  template <typename S>
  void find(const at::Tensor& weight, bool want_cols, bool want_rows) {
    if constexpr (std::is_same_v<S, float>) {
      if (!want_cols && !want_rows) return;
      const int64_t in = weight.size(0), out = weight.size(1);
      const S* w = weight.data_ptr<S>();
      std::vector<S> col_max(out, S(0)), row_max(in, S(0));
      for (int64_t i = 0; i < in; ++i)
        for (int64_t j = 0; j < out; ++j) {
          const S m = std::abs(w[i * out + j]);
          col_max[j] = std::max(col_max[j], m);
          row_max[i] = std::max(row_max[i], m);
        }
      const S normal = std::numeric_limits<S>::min();
      if (want_cols)
        for (int64_t j = 0; j < out; ++j)
          if (col_max[j] > S(0) && col_max[j] < normal) cols.push_back(j);
      if (want_rows)
        for (int64_t i = 0; i < in; ++i)
          if (row_max[i] > S(0) && row_max[i] < normal) rows.push_back(i);
      if (!cols.empty()) {
        without_cols = weight.clone();
        for (const int64_t j : cols) without_cols.select(1, j).zero_();
      }
      if (!rows.empty()) {
        without_rows = weight.clone();
        for (const int64_t i : rows) without_rows.select(0, i).zero_();
      }
    }
  }

  // Σ_i x[i] · y[i] in double, in eight interleaved partial sums (the products are exact in double).
  template <typename S>
  static double dot(const S* x, const double* y, int64_t n) {
    double part[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int u = 0; u < 8; ++u) part[u] += static_cast<double>(x[i + u]) * y[i + u];
    double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (; i < n; ++i) sum += static_cast<double>(x[i]) * y[i];
    return sum;
  }

  // o[r, j] = Σ_i a[r, i] · w[i, j] for the tiny columns j, in double, one rounding (o: rows × out).
  template <typename S>
  void columns(S* o, const S* a, const S* w, int64_t rows_n, int64_t in, int64_t out) const {
    std::vector<double> col(in);
    for (const int64_t j : cols) {
      for (int64_t i = 0; i < in; ++i) col[i] = static_cast<double>(w[i * out + j]);
      for (int64_t r = 0; r < rows_n; ++r) o[r * out + j] = static_cast<S>(dot(a + r * in, col.data(), in));
    }
  }

  // d[r, i] = Σ_j δ[r, j] · w[i, j] for the tiny rows i where act[r, i] > 0 (elsewhere ReLU's mask
  // zeroes it anyway), in double, one rounding (d: rows × in).
  template <typename S>
  void rows_of(S* d, const S* delta, const S* w, const S* act, int64_t rows_n, int64_t in, int64_t out) const {
    std::vector<double> row(out);
    for (const int64_t i : rows) {
      for (int64_t j = 0; j < out; ++j) row[j] = static_cast<double>(w[i * out + j]);
      for (int64_t r = 0; r < rows_n; ++r) {
        if (!(act[r * in + i] > S(0))) continue;
        d[r * in + i] = static_cast<S>(dot(delta + r * out, row.data(), out));
      }
    }
  }
};

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

// `f` maps each vector of entries first (e.g. to their magnitudes).
template <typename A, typename F>
A padded_max(const A* x, int64_t padded, F f) {  // NaN if any entry is NaN, as torch.amax
  using Vec = at::vec::Vectorized<A>;
  Vec acc(-std::numeric_limits<A>::infinity());
  for (int64_t k = 0; k < padded; k += Vec::size()) acc = at::vec::maximum(acc, f(Vec::loadu(x + k)));
  A lanes[Vec::size()];
  acc.store(lanes);
  A m = lanes[0];
  for (int64_t i = 1; i < Vec::size(); ++i) m = std::isnan(lanes[i]) || lanes[i] > m ? lanes[i] : m;
  return m;
}

template <typename A>
A padded_max(const A* x, int64_t padded) {
  return padded_max(x, padded, [](const at::vec::Vectorized<A>& v) { return v; });
}

// Where a loss row writes its gradient. A row computes each entry in A and hands it over either
// as a value or, where the formula ends in a product a·b, as its two factors:
// - CastGrad rounds every entry to the model's dtype S (grad[k] = S(a·b) with a·b in A);
// - ExactGrad keeps doubles for the row bands: a product as the exact double product of its
//   factors (exact for float factors, and its float rounding is the float product's), a value as is.
template <typename S>
struct CastGrad {
  S* grad;
  template <typename A>
  void product(int64_t k, A a, A b) const { grad[k] = static_cast<S>(a * b); }
  template <typename A>
  void value(int64_t k, A x) const { grad[k] = static_cast<S>(x); }
};

struct ExactGrad {
  double* v;
  template <typename A>
  void product(int64_t k, A a, A b) const { v[k] = static_cast<double>(a) * static_cast<double>(b); }
  template <typename A>
  void value(int64_t k, A x) const { v[k] = static_cast<double>(x); }
};

// Softmax CE of one row, as grokking.fused.SoftmaxCE: m = max z, e = exp(z - m), total = Σ e,
// loss = log(total) - (z_y - m), gradient e·(g / total) - g·onehot(y) for the upstream gradient g.
// With z_coef ≠ 0 the row adds the z-loss z_coef·lse², lse = log(total) + m = log Σ exp z (loss=zloss,
// as grokking.losses.z_loss), whose gradient 2·z_coef·lse·softmax scales every e·(g / total) by
// 1 + 2·z_coef·lse; z_coef = 0 computes the plain row, bit for bit.
// The total adds the largest term (e = 1) last, to the sum of the others, as
// grokking.losses.exp_total does: near collapse the others, each below the rounding step of 1, are
// not lost one by one against it. `e` holds `padded` entries.
template <typename S, typename A, typename Out>
A softmax_row(const S* z, int64_t c, int64_t padded, int64_t y, A g, A* e, Out out, A z_coef) {
  using Vec = at::vec::Vectorized<A>;
  for (int64_t k = 0; k < c; ++k) e[k] = static_cast<A>(z[k]);
  for (int64_t k = c; k < padded; ++k) e[k] = -std::numeric_limits<A>::infinity();
  const A m = padded_max(e, padded);
  int64_t top = 0;  // the first largest entry (a NaN row has none: its total is NaN either way)
  while (top < c - 1 && !(e[top] == m)) ++top;
  const Vec vm(m);
  for (int64_t k = 0; k < padded; k += Vec::size()) (Vec::loadu(e + k) - vm).exp().store(e + k);  // pads: 0
  const A largest = e[top];
  e[top] = 0;
  const A total = padded_sum(e, padded) + largest;
  e[top] = largest;
  A per = g / total;
  A loss = std::log(total) - (static_cast<A>(z[y]) - m);
  if (z_coef != A(0)) {
    const A lse = std::log(total) + m;
    per = per * (A(1) + A(2) * z_coef * lse);
    loss = loss + z_coef * lse * lse;
  }
  for (int64_t k = 0; k < c; ++k) out.product(k, e[k], per);
  out.value(y, static_cast<A>(e[y] * per - g));
  return loss;
}

// StableMax CE of one row, as grokking.fused.StableMaxCE: s(x) = (1 + max(x, 0)) / (1 - min(x, 0)),
// loss = log Σ s - log s_y, gradient s'(z)·(g / Σ s) - g·s'(z_y)/s_y·onehot(y), s'(x) = 1/(1 - min(x, 0))².
// `inv_b` and `s` hold `padded` entries.
template <typename S, typename A, typename Out>
A stablemax_row(const S* z, int64_t c, int64_t padded, int64_t y, A g, A* inv_b, A* s, Out out) {
  for (int64_t k = 0; k < c; ++k) {
    const A x = static_cast<A>(z[k]);
    inv_b[k] = A(1) / (-std::min(x, A(0)) + A(1));
    s[k] = (std::max(x, A(0)) + A(1)) * inv_b[k];
  }
  for (int64_t k = c; k < padded; ++k) s[k] = 0;
  const A total = padded_sum(s, padded);
  const A per = g / total;
  for (int64_t k = 0; k < c; ++k) out.value(k, static_cast<A>(inv_b[k] * inv_b[k] * per));
  const A slope_y = inv_b[y] * inv_b[y];
  out.value(y, static_cast<A>(slope_y * per - g * slope_y / s[y]));
  return std::log(total) - std::log(s[y]);
}

// loss_kind: bit 0 the loss (0 softmax, 1 StableMax); bit 1 the SC intervention of Fig. 8 (no
// gradient flows through the correct-class logit: its entry is zero, the loss unchanged).
constexpr int64_t kStableMax = 1, kIntervene = 2;

inline bool valid_loss_kind(int64_t loss_kind) { return loss_kind >= 0 && loss_kind <= (kStableMax | kIntervene); }

// One loss row with its gradient going to `out`; row: 2·padded work entries; z_coef: the softmax
// row's z-loss weight (0: none).
template <typename S, typename A, typename Out>
A any_loss_row(int64_t loss_kind, const S* z, int64_t c, int64_t padded, int64_t y, A g, A* row, Out out,
               A z_coef) {
  const A loss = loss_kind & kStableMax ? stablemax_row<S, A>(z, c, padded, y, g, row, row + padded, out)
                                        : softmax_row<S, A>(z, c, padded, y, g, row, out, z_coef);
  if (loss_kind & kIntervene) out.value(y, A(0));
  return loss;
}

// Row bands: the backward pass of a float32 model runs each sample at its own power-of-two scale.
//
// After Softmax Collapse a row's logit gradients e^(z - max)/N span more binades than float32
// holds, at any one scale: at the backward scale 2^40 some land in float32's subnormal range, and
// every arithmetic operation with a subnormal operand or result takes a microcode assist on x86
// (docs/speed.md, "Late epochs"). So each row's gradient is first rounded to float32 exactly as
// before (the reference value at the backward scale, subnormals included), then multiplied by
// 2^(kBandWidth·q), q the row's band, chosen from the row's largest entry so that every nonzero
// entry of the row is a normal float. Rows of one band go through the backward GEMMs together and
// sum into their band's own gradient buffers; the bands are unscaled and added in double at the
// end. A power-of-two scaling of a normal float is exact, so while no value of the backward pass
// is subnormal at the backward scale (every early epoch) the gradients are bit for bit those of
// one band at 2^40; later the products of subnormal values are computed at full precision instead
// of being rounded to 2^-149 (nothing is flushed or dropped). Rows whose every entry rounds to zero
// contribute nothing and are skipped.
constexpr int kBandWidth = 40;  // binades between bands: ≥ 23, so a row's subnormals become normal
constexpr int kBands = 8;       // bands 0 (unscaled) .. 7

// Whether the MLP step uses row bands (the default); off, every row goes unscaled into band 0 and
// the step computes what it computed before the bands were introduced, bit for bit (a switch for
// tests and benchmarks, and the step's own fallback: see mlp_step).
inline bool& row_bands() {
  static bool on = true;
  return on;
}

// The band of a row of gradients at the backward scale whose largest magnitude is m (finite),
// when the upstream gradient g of a sample has exponent top - 1: band 1 holds rows whose largest
// entry lies within kBandWidth binades below 2·g, band 2 the next kBandWidth, and so on; -1 when
// every entry rounds to float zero (m ≤ 2^-150). Band 1 scales a row to at most 2^(top + 40).
inline int row_band(double m, int top) {
  if (!(m > 0x1p-150)) return -1;
  const int e = std::ilogb(m);
  if (e > top) return 0;
  return std::min(kBands - 1, 1 + (top - e) / kBandWidth);
}

// grad[k] = float(v[k]) · 2^shift for k < c, exactly: the float rounding of v (subnormal results
// rounded to multiples of 2^-149, as a float conversion does) computed in double, so that no
// subnormal float is ever produced (shift ≥ 23 makes every nonzero result normal). `v` holds
// `padded` entries; `tmp` is a work buffer of as many.
inline void scaled_floats(const double* v, int64_t c, int64_t padded, int shift, double* tmp, float* grad) {
  using Vec = at::vec::Vectorized<double>;
  const Vec tiny(0x1p-126), up(0x1p149), down(std::ldexp(1.0, shift - 149)), scale(std::ldexp(1.0, shift));
  for (int64_t k = 0; k < padded; k += Vec::size()) {
    const Vec x = Vec::loadu(v + k);
    const Vec sub = (x * up).round() * down;  // round half to even, as a conversion rounds
    Vec::blendv(x * scale, sub, x.abs() < tiny).store(tmp + k);
  }
  for (int64_t k = 0; k < c; ++k) grad[k] = static_cast<float>(tmp[k]);
}

// The largest magnitude of v's `padded` entries (NaN if any is NaN).
inline double padded_absmax(const double* v, int64_t padded) {
  return padded_max(v, padded, [](const at::vec::Vectorized<double>& x) { return x.abs(); });
}

// The loss of one row as loss_row computes it, for a float32 model: the gradient's values (each
// the exact double whose float rounding loss_row writes) go to v (`padded` entries, zero-padded),
// and their float roundings, scaled by the row's band, to grad. Returns the band (see row_band);
// grad is left unwritten for band -1, and a non-finite row goes unscaled into band 0.
// row: 2·padded work entries, v and tmp: padded each.
template <typename A>
int banded_loss_row(bool bands, int64_t loss_kind, const float* z, int64_t c, int64_t padded, int64_t y, A g, int top,
                    A* row, double* v, double* tmp, float* grad, A* loss, A z_coef) {
  *loss = any_loss_row<float, A>(loss_kind, z, c, padded, y, g, row, ExactGrad{v}, z_coef);
  for (int64_t k = c; k < padded; ++k) v[k] = 0;
  const double m = padded_absmax(v, padded);
  if (!std::isfinite(m)) {
    for (int64_t k = 0; k < c; ++k) grad[k] = static_cast<float>(v[k]);
    return 0;
  }
  const int band = bands ? row_band(m, top) : 0;
  if (band >= 0) scaled_floats(v, c, padded, kBandWidth * band, tmp, grad);
  return band;
}

// Per-sample loss of a row and its gradient, rounded to S, into grad (loss_kind as for
// any_loss_row); row: 2·padded work entries.
template <typename S, typename A>
A loss_row(int64_t loss_kind, const S* z, int64_t c, int64_t padded, int64_t y, A g, A* row, S* grad, A z_coef) {
  return any_loss_row<S, A>(loss_kind, z, c, padded, y, g, row, CastGrad<S>{grad}, z_coef);
}

}  // namespace grokking_native
