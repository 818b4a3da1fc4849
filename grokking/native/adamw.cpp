// One AdamW update of many parameter tensors on CPU, element by element in the parameters' dtype:
//
//   p ← p·(1 − lr·λ)                      (decoupled weight decay, when λ ≠ 0)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + ((1 − β2)·g)·g
//   p ← p − (α_t·m) / (√v / √(1 − β2^t) + ε),   α_t = lr / (1 − β1^t)
//
// every operation rounded to the dtype (IEEE round to nearest even, no fused multiply-add), the
// constants rounded to it first, as torch's AdamW rounds them.
//
// Why not torch's fused AdamW: once a run fits, many gradients are exactly zero and the first
// moments decay into float32's subnormal range, where they stay for good (β1·m rounds back to m
// for m ≤ 4·2^-149). Every float32 operation with a subnormal operand or result takes a microcode
// assist on x86 cores without flush-to-zero, ~35× slower, and torch's step slowed 3.5–4.5× for the
// whole rest of such runs. Here such a float32 operation is computed in double and rounded to
// float: a product of two floats is exact in double, and for +, −, ×, ÷ and √ rounding the double
// result to float gives the correctly rounded float result (53 ≥ 2·24 + 2), subnormal results
// included. The conversions take no assist, so the values are those of float32 arithmetic at full
// speed. With AVX-512, blocks of 16 elements with no tiny input (g below 2^-59, m below 2^-96, p or
// v below 2^-120) run in float32 directly, where no subnormal can arise in practice; in the other
// blocks the operations that touch tiny values run in double (see update_block16).
// float64 parameters use double arithmetic directly (their subnormals are still slow, and rare).
// Without AVX-512 everything runs through the scalar path, correct but slower than torch's fused
// step, so grokking.optim uses this update only where adamw_vectorized() is true.
#include "common.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace grokking_native {
namespace {

struct Hyper {
  double lr, beta1, beta2, weight_decay, eps;
};

// Arithmetic on a working type D that holds values of the parameter dtype S: `r` rounds a D to S.
// Scalar: S float or double, computed in double.
template <typename S>
struct Scalar {
  using D = double;
  static constexpr int64_t lanes = 1;
  static D load(const S* p) { return *p; }
  static void store(S* p, D x) { *p = static_cast<S>(x); }
  static D r(D x) { return static_cast<S>(x); }
  static D set(double x) { return x; }
  static D add(D a, D b) { return a + b; }
  static D sub(D a, D b) { return a - b; }
  static D mul(D a, D b) { return a * b; }
  static D div(D a, D b) { return a / b; }
  static D sqrt(D a) { return std::sqrt(a); }
};

// A vector of floats widened to doubles. Written with intrinsics: a compiler may turn a scalar
// (float)((double)a · (double)b) back into a float operation (the same value, by the argument
// above), and with it the assists.
#if defined(__AVX512F__)
struct FloatLanes {
  using D = __m512d;
  static constexpr int64_t lanes = 8;
  static D load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static void store(float* p, D x) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(x)); }
  static D r(D x) { return _mm512_cvtps_pd(_mm512_cvtpd_ps(x)); }
  static D set(double x) { return _mm512_set1_pd(x); }
  static D add(D a, D b) { return _mm512_add_pd(a, b); }
  static D sub(D a, D b) { return _mm512_sub_pd(a, b); }
  static D mul(D a, D b) { return _mm512_mul_pd(a, b); }
  static D div(D a, D b) { return _mm512_div_pd(a, b); }
  static D sqrt(D a) { return _mm512_sqrt_pd(a); }
};
#else
using FloatLanes = Scalar<float>;
#endif

template <typename S>
struct Lanes {
  using type = Scalar<S>;  // double parameters: plain double arithmetic (the compiler vectorizes it)
};
template <>
struct Lanes<float> {
  using type = FloatLanes;
};

// Constants rounded to S: decay 1 − lr·λ, β1, 1 − β1, β2, 1 − β2, √(1 − β2^t), ε, α_t.
enum { kDecay, kB1, kC1, kB2, kC2, kRoot, kEps, kAlpha, kConstants };

// The update of elements [i, i + O::lanes).
template <typename S, typename O>
inline void update_lanes(S* p, const S* g, S* m, S* v, int64_t i, const typename O::D (&k)[kConstants], bool decays) {
  using D = typename O::D;
  const D gi = O::load(g + i);
  D pi = O::load(p + i);
  if (decays) pi = O::r(O::mul(pi, k[kDecay]));
  const D mi = O::r(O::add(O::r(O::mul(k[kB1], O::load(m + i))), O::r(O::mul(k[kC1], gi))));
  const D vi = O::r(O::add(O::r(O::mul(k[kB2], O::load(v + i))), O::r(O::mul(O::r(O::mul(k[kC2], gi)), gi))));
  const D denom = O::r(O::add(O::r(O::div(O::r(O::sqrt(vi)), k[kRoot])), k[kEps]));
  O::store(m + i, mi);
  O::store(v + i, vi);
  O::store(p + i, O::sub(pi, O::r(O::div(O::r(O::mul(k[kAlpha], mi)), denom))));
}

#if defined(__AVX512F__)
// Nonzero lanes of x below 2^e in magnitude.
inline __mmask16 tiny(__m512 x, int e) {
  const __m512i bits = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
  return _mm512_mask_cmplt_epu32_mask(_mm512_test_epi32_mask(bits, bits), bits, _mm512_set1_epi32((127 + e) << 23));
}

// The update of elements [i, i + 16) of float parameters: float32 operations, each computed in
// float32 where no subnormal is expected and in double (rounded to float, FloatLanes) elsewhere.
inline void update_block16(float* p, const float* g, float* m, float* v, int64_t i,
                           const FloatLanes::D (&kd)[kConstants], const __m512 (&kf)[kConstants], bool decays) {
  using O = FloatLanes;
  const __m512 gf = _mm512_loadu_ps(g + i), mf = _mm512_loadu_ps(m + i), vf = _mm512_loadu_ps(v + i);
  __m512 pf = _mm512_loadu_ps(p + i);
  if ((tiny(gf, -59) | tiny(mf, -96) | tiny(pf, -120) | tiny(vf, -120)) == 0) {
    if (decays) pf = _mm512_mul_ps(pf, kf[kDecay]);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(kf[kB1], mf), _mm512_mul_ps(kf[kC1], gf));
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(kf[kB2], vf), _mm512_mul_ps(_mm512_mul_ps(kf[kC2], gf), gf));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), kf[kRoot]), kf[kEps]);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_storeu_ps(p + i, _mm512_sub_ps(pf, _mm512_div_ps(_mm512_mul_ps(kf[kAlpha], mi), denom)));
    return;
  }
  // Some operand is tiny: the first moment and the step through it in double; the decay, the
  // second moment and the denominator in float32 where their operands are not tiny.
  const bool p_tiny = tiny(pf, -120) != 0;
  if (decays && !p_tiny) pf = _mm512_mul_ps(pf, kf[kDecay]);
  const bool decay_in_double = decays && p_tiny;
  const bool zero_g = _mm512_test_epi32_mask(_mm512_castps_si512(gf), _mm512_set1_epi32(0x7fffffff)) == 0;
  const bool v_in_float = (tiny(gf, -59) | tiny(vf, -120)) == 0;
  O::D md[2], pd[2];
  for (int h = 0; h < 2; ++h) {
    const int64_t j = i + 8 * h;
    const O::D gi = O::load(g + j);
    const O::D b1m = O::r(O::mul(kd[kB1], O::load(m + j)));
    // with g = ±0, (1 - β1)·g is an exact ±0 and adding it is exact: no rounding needed
    md[h] = zero_g ? O::add(b1m, O::mul(kd[kC1], gi)) : O::r(O::add(b1m, O::r(O::mul(kd[kC1], gi))));
    O::store(m + j, md[h]);
    if (!v_in_float) {
      const O::D vi = O::r(O::add(O::r(O::mul(kd[kB2], O::load(v + j))), O::r(O::mul(O::r(O::mul(kd[kC2], gi)), gi))));
      O::store(v + j, vi);
    }
  }
  _mm512_storeu_ps(p + i, pf);  // decayed in float32, or not at all
  for (int h = 0; h < 2; ++h) {
    pd[h] = O::load(p + i + 8 * h);
    if (decay_in_double) pd[h] = O::r(O::mul(pd[h], kd[kDecay]));
  }
  if (v_in_float)
    _mm512_storeu_ps(v + i, _mm512_add_ps(_mm512_mul_ps(kf[kB2], vf), _mm512_mul_ps(_mm512_mul_ps(kf[kC2], gf), gf)));
  const __m512 vi = _mm512_loadu_ps(v + i);
  O::D denom[2];
  if (tiny(vi, -126) == 0) {  // no subnormal v: the denominator in float32
    const __m512 d = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), kf[kRoot]), kf[kEps]);
    denom[0] = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
    denom[1] = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)));
  } else {
    for (int h = 0; h < 2; ++h)
      denom[h] = O::r(O::add(O::r(O::div(O::r(O::sqrt(O::load(v + i + 8 * h))), kd[kRoot])), kd[kEps]));
  }
  for (int h = 0; h < 2; ++h)
    O::store(p + i + 8 * h, O::sub(pd[h], O::r(O::div(O::r(O::mul(kd[kAlpha], md[h])), denom[h]))));
}
#endif

template <typename O>
void constants(typename O::D (&k)[kConstants], const double (&c)[kConstants]) {
  for (int j = 0; j < kConstants; ++j) k[j] = O::set(c[j]);
}

// x rounded to S, through memory: GCC 12 (-O2 and -O3) was seen to use the unrounded doubles of
// such constants in vector code (tests/test_native_adamw.py checks every path bit for bit).
template <typename S>
double rounded(double x) {
  volatile S y = static_cast<S>(x);
  return y;
}

template <typename S>
void update(S* p, const S* g, S* m, S* v, int64_t n, const Hyper& h, double step_size, double bc2_sqrt) {
  using V = typename Lanes<S>::type;
  using One = Scalar<S>;
  const double c[kConstants] = {
      rounded<S>(1 - h.lr * h.weight_decay), rounded<S>(h.beta1), rounded<S>(1 - h.beta1),
      rounded<S>(h.beta2),                   rounded<S>(1 - h.beta2), rounded<S>(bc2_sqrt),
      rounded<S>(h.eps),                     rounded<S>(step_size)};
  typename V::D kv[kConstants];
  typename One::D k1[kConstants];
  constants<V>(kv, c);
  constants<One>(k1, c);
  const bool decays = h.weight_decay != 0;
  int64_t i = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<S, float>) {
    __m512 kf[kConstants];
    for (int j = 0; j < kConstants; ++j) kf[j] = _mm512_set1_ps(static_cast<float>(c[j]));
    for (; i + 16 <= n; i += 16) update_block16(p, g, m, v, i, kv, kf, decays);
  }
#endif
  for (; i + V::lanes <= n; i += V::lanes) update_lanes<S, V>(p, g, m, v, i, kv, decays);
  for (; i < n; ++i) update_lanes<S, One>(p, g, m, v, i, k1, decays);
}

// Work items of at most `block` elements across all tensors, split statically between the threads;
// the update is elementwise, so any split gives the same values.
template <typename S>
void update_all(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
                const std::vector<double>& step_sizes, const std::vector<double>& bc2_sqrts, const Hyper& h) {
  constexpr int64_t block = 4096;
  std::vector<std::pair<size_t, int64_t>> items;
  for (size_t i = 0; i < params.size(); ++i)
    for (int64_t s = 0; s < params[i].numel(); s += block) items.emplace_back(i, s);
  const int64_t n_items = static_cast<int64_t>(items.size());
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), n_items));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
#endif
  for (int64_t j = 0; j < n_items; ++j) {
    const auto [i, s] = items[j];
    const int64_t n = std::min(block, params[i].numel() - s);
    update<S>(params[i].data_ptr<S>() + s, grads[i].data_ptr<S>() + s, exp_avgs[i].data_ptr<S>() + s,
              exp_avg_sqs[i].data_ptr<S>() + s, n, h, step_sizes[i], bc2_sqrts[i]);
  }
}

}  // namespace

// params, exp_avgs, exp_avg_sqs: one contiguous tensor of each per parameter, same dtype (float32
// or float64) and size; grads: the parameters' gradients (made contiguous here); steps: each
// parameter's step count, a 0-d tensor as torch's AdamW keeps it. Counts every step up by one, then
// updates params, exp_avgs and exp_avg_sqs in place with α_t = lr / (1 − β1^t) and √(1 − β2^t).
void adamw_step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
                const std::vector<at::Tensor>& steps, double lr, double beta1, double beta2, double weight_decay,
                double eps) {
  const size_t k = params.size();
  TORCH_CHECK(grads.size() == k && exp_avgs.size() == k && exp_avg_sqs.size() == k && steps.size() == k,
              "adamw_step: one gradient, state pair and step count per parameter");
  if (k == 0) return;
  const auto dtype = params[0].scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "adamw_step: parameters must be float32 or float64");
  std::vector<at::Tensor> contiguous;
  for (const auto& t : grads) contiguous.push_back(t.contiguous());
  const auto& g = contiguous;
  for (size_t i = 0; i < k; ++i)
    for (const auto* t : {&params[i], &g[i], &exp_avgs[i], &exp_avg_sqs[i]})
      TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->scalar_type() == dtype &&
                      t->numel() == params[i].numel(),
                  "adamw_step: contiguous CPU tensors of one dtype, each the size of its parameter");
  std::vector<double> step_sizes, bc2_sqrts;  // in double, as torch's AdamW computes them
  for (const auto& step : steps) {
    TORCH_CHECK(step.numel() == 1 && step.device().is_cpu(), "adamw_step: a step count is a CPU scalar tensor");
    step.add_(1);
    const double t = step.item<double>();
    step_sizes.push_back(lr / (1 - std::pow(beta1, t)));
    bc2_sqrts.push_back(std::sqrt(1 - std::pow(beta2, t)));
  }
  const Hyper h{lr, beta1, beta2, weight_decay, eps};
  if (dtype == at::kFloat)
    update_all<float>(params, g, exp_avgs, exp_avg_sqs, step_sizes, bc2_sqrts, h);
  else
    update_all<double>(params, g, exp_avgs, exp_avg_sqs, step_sizes, bc2_sqrts, h);
}

// Whether adamw_step has its vectorized paths (AVX-512 builds).
bool adamw_vectorized() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

}  // namespace grokking_native
