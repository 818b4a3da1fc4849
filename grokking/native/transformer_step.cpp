// The per-sample part of one training step of the one-layer transformer (grokking.models.Transformer)
// on CPU, chunk by chunk as in mlp_step.cpp.
//
// The caller computes the tables that do not depend on the sample (autograd keeps their graph):
// `values` (T, H) and `scores` (T, heads) of every (token, position) row and, in row T - 1, of the
// "=" position, and `c` (d), the "=" position's residual stream. Per sample this computes
//
//   p = softmax(scores[a], scores[b], scores[=]) per head,  z = p_a v_a + p_b v_b + p_= v_=,
//   o = c + z W_O,  r = o + relu(o W_in) W_out,  logits = r U,
//
// the cross-entropy and the backward pass. It returns the logits, per-sample losses, and the
// gradients of the tables and of c at the backward scale `grad_scale` (the caller backpropagates
// them through autograd and unscales what they reach), and writes the gradients of W_O, W_in,
// W_out and U, unscaled, into `grads`.
#include "common.h"

namespace grokking_native {
namespace {

template <typename S, typename A>
std::vector<at::Tensor> transformer_impl(const at::Tensor& values, const at::Tensor& scores, const at::Tensor& c_t,
                                         const at::Tensor& w_o, const at::Tensor& w_in, const at::Tensor& w_out,
                                         const at::Tensor& unembed, const at::Tensor& rows_t, const at::Tensor& y,
                                         int64_t loss_kind, double grad_scale, int64_t chunk,
                                         at::ScalarType loss_dtype, const std::vector<at::Tensor>& grads,
                                         double z_coef, double output_scale) {
  const int64_t n = rows_t.size(0), tables = values.size(0), hd = values.size(1), heads = scores.size(1);
  const int64_t e = hd / heads, d = w_o.size(1), m = w_in.size(1), classes = unembed.size(1);
  const auto opts = values.options();
  at::Tensor logits = at::empty({n, classes}, opts);
  at::Tensor losses = at::empty({n}, opts.dtype(loss_dtype));
  S* z_all = logits.data_ptr<S>();
  A* loss_all = losses.data_ptr<A>();
  const int64_t* rows = rows_t.data_ptr<int64_t>();
  const int64_t* y_all = y.data_ptr<int64_t>();
  const S *vt = values.data_ptr<S>(), *st = scores.data_ptr<S>(), *c = c_t.data_ptr<S>();
  const S *wo = w_o.data_ptr<S>(), *wi = w_in.data_ptr<S>(), *wu = w_out.data_ptr<S>(), *un = unembed.data_ptr<S>();
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), n_chunks));

  // Per-thread sums: ∂values, ∂scores, ∂c, ∂W_O, ∂W_in, ∂W_out, ∂U.
  const ThreadSums<S> sums({{tables, hd}, {tables, heads}, {d}, {hd, d}, {d, m}, {m, d}, {d, classes}}, threads, opts);
  // × output_scale: the logits' gradients are those of the unscaled output (see mlp_step.cpp)
  const A g = static_cast<A>(grad_scale) / static_cast<A>(n) * static_cast<A>(output_scale);
  const S alpha = static_cast<S>(output_scale);
  const int64_t eq = tables - 1;  // the "=" row
  const S unscale = static_cast<S>(1 / grad_scale);
  const std::vector<S*> out = sums.outputs(3, grads);  // ∂W_O, ∂W_in, ∂W_out, ∂U: pieces 3 to 6

#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
  {
    const int t = thread_index(), team = team_size();
    sums.zero(t, team);
    S *g_values = sums.piece(t, 0), *g_scores = sums.piece(t, 1), *g_c = sums.piece(t, 2);
    S *g_wo = sums.piece(t, 3), *g_wi = sums.piece(t, 4), *g_wu = sums.piece(t, 5), *g_un = sums.piece(t, 6);
    Buffer<S> z = buffer<S>(chunk * hd), o = buffer<S>(chunk * d), a = buffer<S>(chunk * m), r = buffer<S>(chunk * d);
    Buffer<S> p = buffer<S>(chunk * heads * 3), grad_z = buffer<S>(chunk * classes), dr = buffer<S>(chunk * d);
    Buffer<S> da = buffer<S>(chunk * m), d_o = buffer<S>(chunk * d), dz = buffer<S>(chunk * hd);
    const int64_t vec = at::vec::Vectorized<A>::size(), padded = (classes + vec - 1) / vec * vec;
    Buffer<A> row = buffer<A>(2 * padded);
    const S* v_eq = vt + eq * hd;
    const S* s_eq = st + eq * heads;
    for (int64_t ch = t; ch < n_chunks; ch += team) {
      const int64_t r0 = ch * chunk, nr = std::min(chunk, n - r0);
      // Attention of "=" over [a, b, "="]: a 3-way softmax per head, then the weighted values.
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t ra = rows[2 * (r0 + i)], rb = rows[2 * (r0 + i) + 1];
        const S *va = vt + ra * hd, *vb = vt + rb * hd;
        S* zi = z.get() + i * hd;
        S* pi = p.get() + i * heads * 3;
        for (int64_t j = 0; j < heads; ++j) {
          const S s0 = st[ra * heads + j], s1 = st[rb * heads + j], s2 = s_eq[j];
          const S mx = std::max(std::max(s0, s1), s2);
          const S e0 = std::exp(s0 - mx), e1 = std::exp(s1 - mx), e2 = std::exp(s2 - mx);
          const S total = e0 + e1 + e2;
          const S p0 = e0 / total, p1 = e1 / total, p2 = e2 / total;
          pi[3 * j] = p0, pi[3 * j + 1] = p1, pi[3 * j + 2] = p2;
          for (int64_t k = j * e; k < (j + 1) * e; ++k) zi[k] = va[k] * p0 + vb[k] * p1 + v_eq[k] * p2;
        }
      }
      // o = c + z W_O;  r = o + relu(o W_in) W_out;  logits = r U.
      for (int64_t i = 0; i < nr; ++i) std::copy(c, c + d, o.get() + i * d);
      gemm<S>(false, false, nr, d, hd, z.get(), hd, wo, d, S(1), o.get(), d);
      gemm<S>(false, false, nr, m, d, o.get(), d, wi, m, S(0), a.get(), m);
      add_bias_relu_<S>(a.get(), nullptr, nr, m);
      std::copy(o.get(), o.get() + nr * d, r.get());
      gemm<S>(false, false, nr, d, m, a.get(), m, wu, d, S(1), r.get(), d);
      S* zl = z_all + r0 * classes;
      gemm<S>(false, false, nr, classes, d, r.get(), d, un, classes, S(0), zl, classes);
      if (output_scale != 1.0)  // the model's output × output_scale, in S
        for (int64_t k = 0; k < nr * classes; ++k) zl[k] = zl[k] * alpha;
      for (int64_t i = 0; i < nr; ++i)
        loss_all[r0 + i] = loss_row<S, A>(loss_kind, zl + i * classes, classes, padded, y_all[r0 + i], g, row.get(),
                                          grad_z.get() + i * classes, static_cast<A>(z_coef));
      // Backward.
      gemm<S>(true, false, d, classes, nr, r.get(), d, grad_z.get(), classes, S(1), g_un, classes);  // ∂U += rᵀ δ
      gemm<S>(false, true, nr, d, classes, grad_z.get(), classes, un, classes, S(0), dr.get(), d);  // ∂r = δ Uᵀ
      gemm<S>(true, false, m, d, nr, a.get(), m, dr.get(), d, S(1), g_wu, d);  // ∂W_out += aᵀ ∂r
      gemm<S>(false, true, nr, m, d, dr.get(), d, wu, d, S(0), da.get(), m);  // ∂a = ∂r W_outᵀ
      mask_(da.get(), a.get(), nr * m);
      gemm<S>(true, false, d, m, nr, o.get(), d, da.get(), m, S(1), g_wi, m);  // ∂W_in += oᵀ ∂u
      std::copy(dr.get(), dr.get() + nr * d, d_o.get());  // ∂o = ∂r + ∂u W_inᵀ
      gemm<S>(false, true, nr, d, m, da.get(), m, wi, m, S(1), d_o.get(), d);
      gemm<S>(true, false, hd, d, nr, z.get(), hd, d_o.get(), d, S(1), g_wo, d);  // ∂W_O += zᵀ ∂o
      add_column_sums(g_c, d_o.get(), nr, d);  // ∂c += Σ ∂o
      gemm<S>(false, true, nr, hd, d, d_o.get(), d, wo, d, S(0), dz.get(), hd);  // ∂z = ∂o W_Oᵀ
      // Attention backward: ∂v_k += p_k ∂z, ∂s_k = p_k (⟨∂z, v_k⟩ - Σ_l p_l ⟨∂z, v_l⟩), per head.
      S* gv_eq = g_values + eq * hd;
      S* gs_eq = g_scores + eq * heads;
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t ra = rows[2 * (r0 + i)], rb = rows[2 * (r0 + i) + 1];
        const S *va = vt + ra * hd, *vb = vt + rb * hd;
        S *ga = g_values + ra * hd, *gb = g_values + rb * hd;
        const S* dzi = dz.get() + i * hd;
        const S* pi = p.get() + i * heads * 3;
        for (int64_t j = 0; j < heads; ++j) {
          const S p0 = pi[3 * j], p1 = pi[3 * j + 1], p2 = pi[3 * j + 2];
          S dp0 = 0, dp1 = 0, dp2 = 0;
          for (int64_t k = j * e; k < (j + 1) * e; ++k) {
            dp0 += dzi[k] * va[k], dp1 += dzi[k] * vb[k], dp2 += dzi[k] * v_eq[k];
            ga[k] += dzi[k] * p0, gb[k] += dzi[k] * p1, gv_eq[k] += dzi[k] * p2;
          }
          const S mean = p0 * dp0 + p1 * dp1 + p2 * dp2;
          g_scores[ra * heads + j] += p0 * (dp0 - mean);
          g_scores[rb * heads + j] += p1 * (dp1 - mean);
          gs_eq[j] += p2 * (dp2 - mean);
        }
      }
    }
    // The weights' gradients: the threads' sums, unscaled, each thread writing a slice of every one.
#ifdef _OPENMP
#pragma omp barrier
#endif
    for (size_t i = 0; i < out.size(); ++i) sums.total_into(3 + i, out[i], unscale, t, team);
  }
  std::vector<at::Tensor> result{logits, losses};
  for (auto& g : sums.totals(0, 3)) result.push_back(g);
  return result;
}

}  // namespace

// See the header of this file. values (T, H), scores (T, heads), c (d), w_o (H, d), w_in (d, m),
// w_out (m, d), unembed (d, C): contiguous, one dtype; rows (N, 2) int64 table rows of a and b;
// y (N,) int64; grads: where the gradients of w_o, w_in, w_out and unembed are written (contiguous,
// each of its weight's size and dtype). Returns logits (N, C), losses (N,), then the scaled
// gradients of values, scores and c.
std::vector<at::Tensor> transformer_step(const at::Tensor& values, const at::Tensor& scores, const at::Tensor& c,
                                         const at::Tensor& w_o, const at::Tensor& w_in, const at::Tensor& w_out,
                                         const at::Tensor& unembed, const at::Tensor& rows, const at::Tensor& y,
                                         int64_t loss_kind, at::ScalarType loss_dtype, double grad_scale,
                                         int64_t chunk, const std::vector<at::Tensor>& grads, double z_coef,
                                         double output_scale) {
  TORCH_CHECK(std::isfinite(output_scale) && output_scale > 0, "transformer_step: output_scale must be positive");
  TORCH_CHECK(z_coef >= 0 && (z_coef == 0 || !(loss_kind & kStableMax)), "transformer_step: z_coef is a softmax loss's, >= 0");
  TORCH_CHECK(valid_loss_kind(loss_kind), "transformer_step: loss_kind must be 0 (softmax) or 1 (StableMax), plus 2 for the SC intervention");
  TORCH_CHECK(chunk > 0 && rows.size(0) > 0, "transformer_step: empty batch or chunk");
  const auto dtype = values.scalar_type();
  for (const auto* t : {&values, &scores, &c, &w_o, &w_in, &w_out, &unembed})
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == dtype, "transformer_step: contiguous tensors of one dtype");
  TORCH_CHECK(values.size(1) % scores.size(1) == 0, "transformer_step: heads must divide the value width");
  TORCH_CHECK(rows.is_contiguous() && rows.scalar_type() == at::kLong && rows.dim() == 2 && rows.size(1) == 2);
  TORCH_CHECK(y.is_contiguous() && y.scalar_type() == at::kLong);
  TORCH_CHECK(grads.size() == 4, "transformer_step: gradient outputs for w_o, w_in, w_out and unembed");
  // shapes and index ranges: the loops below trust them
  TORCH_CHECK(values.dim() == 2 && scores.dim() == 2 && scores.size(0) == values.size(0) && scores.size(1) > 0,
              "transformer_step: values (T, H) and scores (T, heads) must have the same rows");
  const int64_t width = values.size(1), d = c.numel();
  TORCH_CHECK(w_o.dim() == 2 && w_o.size(0) == width && w_o.size(1) == d, "transformer_step: w_o must be (H, d)");
  TORCH_CHECK(w_in.dim() == 2 && w_in.size(0) == d, "transformer_step: w_in must be (d, m)");
  TORCH_CHECK(w_out.dim() == 2 && w_out.size(0) == w_in.size(1) && w_out.size(1) == d,
              "transformer_step: w_out must be (m, d)");
  TORCH_CHECK(unembed.dim() == 2 && unembed.size(0) == d, "transformer_step: unembed must be (d, C)");
  TORCH_CHECK(y.dim() == 1 && y.size(0) == rows.size(0), "transformer_step: y must hold one label per sample");
  check_indices(rows, values.size(0), "transformer_step: table row");
  check_indices(y, unembed.size(1), "transformer_step: label");
  const at::Tensor v = aligned(values), s = aligned(scores), ca = aligned(c), wo = aligned(w_o), wi = aligned(w_in),
                   wu = aligned(w_out), un = aligned(unembed);  // 64-byte aligned (see common.h)
  const int64_t n = chunk_rows(chunk);
  return dispatch(dtype, loss_dtype, "transformer_step", [&]<typename S, typename A>() {
    return transformer_impl<S, A>(v, s, ca, wo, wi, wu, un, rows, y, loss_kind, grad_scale, n, loss_dtype, grads,
                                  z_coef, output_scale);
  });
}

}  // namespace grokking_native
