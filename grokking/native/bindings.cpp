// The Python module of the C++ training steps and AdamW update (grokking/native/__init__.py builds and loads it).
#include <torch/extension.h>

#include "common.h"

#include <vector>

namespace grokking_native {
std::vector<at::Tensor> mlp_step(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases,
                                 const at::Tensor& x, bool tokens, const at::Tensor& y, int64_t loss_kind,
                                 at::ScalarType loss_dtype, double grad_scale, int64_t chunk,
                                 const std::vector<at::Tensor>& grads, double z_coef, double output_scale);
std::vector<at::Tensor> transformer_step(const at::Tensor& values, const at::Tensor& scores, const at::Tensor& c,
                                         const at::Tensor& w_o, const at::Tensor& w_in, const at::Tensor& w_out,
                                         const at::Tensor& unembed, const at::Tensor& rows, const at::Tensor& y,
                                         int64_t loss_kind, at::ScalarType loss_dtype, double grad_scale,
                                         int64_t chunk, const std::vector<at::Tensor>& grads, double z_coef,
                                         double output_scale);
void adamw_step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
                const std::vector<at::Tensor>& steps, double lr, double beta1, double beta2, double weight_decay,
                double eps);
bool adamw_vectorized();
}  // namespace grokking_native

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mlp_step", &grokking_native::mlp_step, "one MLP training step (see mlp_step.cpp)");
  m.def(
      "mlp_step",
      [](const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& biases, const at::Tensor& x, bool tokens,
         const at::Tensor& y, int64_t loss_kind, at::ScalarType loss_dtype, double grad_scale, int64_t chunk,
         const std::vector<at::Tensor>& grads) {
        return grokking_native::mlp_step(weights, biases, x, tokens, y, loss_kind, loss_dtype, grad_scale, chunk, grads,
                                         0.0, 1.0);
      },
      "one MLP training step without a z-loss or an output scale");
  m.def(
      "set_direct_blas", [](bool on) { grokking_native::direct_blas() = on; },
      "call the exported BLAS directly (default) or go through at::mm (the path where none is exported)");
  m.def(
      "set_row_bands", [](bool on) { grokking_native::row_bands() = on; },
      "run the MLP step's backward pass in row bands (default) or every row at the backward scale");
  m.def("transformer_step", &grokking_native::transformer_step,
        "the per-sample part of one transformer training step (see transformer_step.cpp)");
  m.def(
      "transformer_step",
      [](const at::Tensor& values, const at::Tensor& scores, const at::Tensor& c, const at::Tensor& w_o,
         const at::Tensor& w_in, const at::Tensor& w_out, const at::Tensor& unembed, const at::Tensor& rows,
         const at::Tensor& y, int64_t loss_kind, at::ScalarType loss_dtype, double grad_scale, int64_t chunk,
         const std::vector<at::Tensor>& grads) {
        return grokking_native::transformer_step(values, scores, c, w_o, w_in, w_out, unembed, rows, y, loss_kind,
                                                 loss_dtype, grad_scale, chunk, grads, 0.0, 1.0);
      },
      "the per-sample part of one transformer training step without a z-loss or an output scale");
  m.def("adamw_step", &grokking_native::adamw_step, "one AdamW update of many parameters (see adamw.cpp)");
  m.def("adamw_vectorized", &grokking_native::adamw_vectorized, "whether adamw_step is vectorized (AVX-512)");
}
