// The op table: for every kernel the engine calls, one slot per backend (cpu, native CUDA, cuDNN).
// engine/ops/*.cpp check shapes, allocate outputs and record autograd nodes, then call
// `kernels_for(x).conv2d_forward(...)`; kernels/<backend>/*.cpp fill the slots in their
// register_* functions (listed in kernels/registry.cpp). A backend that lacks a kernel leaves the
// slot empty, and calling it throws an error naming the op and the backend. This is the pattern of
// PyTorch ATen's DispatchStub and ggml's backend interface.
//
// Kernels receive contiguous tensors on one device with outputs already allocated; they check
// nothing about shapes (the op did) and never allocate autograd state.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"

namespace engine {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

struct Pool2dParams {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pooling only
};

enum class Activation : uint8_t { ReLU, ReLU6, Sigmoid, Tanh };
const char* activation_name(Activation a);

// Hyper-parameters of the fused optimizer update kernels (one call per parameter tensor). Double,
// as PyTorch keeps them in Python floats: derived scalars such as 1 - beta2 are computed in double
// and rounded to float once, inside the kernel.
struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
};
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  int64_t step;    // 1-based, for bias correction
};

// Argument order is always (inputs..., outputs..., params).
struct KernelTable {
  // y = conv(x, w) + b. b may be undefined.
  void (*conv2d_forward)(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                         const Conv2dParams& p) = nullptr;
  void (*conv2d_backward_data)(const Tensor& gy, const Tensor& w, Tensor& gx,
                               const Conv2dParams& p) = nullptr;
  // gw (and gb when defined) are overwritten, not accumulated.
  void (*conv2d_backward_weight)(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb,
                                 const Conv2dParams& p) = nullptr;

  // y[N,out] = x[N,in] w[out,in]^T + b
  void (*linear_forward)(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) = nullptr;
  void (*linear_backward_data)(const Tensor& gy, const Tensor& w, Tensor& gx) = nullptr;
  void (*linear_backward_weight)(const Tensor& gy, const Tensor& x, Tensor& gw,
                                 Tensor& gb) = nullptr;

  // indices (I64): flat h*W+w position of each maximum within its (n, c) plane.
  void (*max_pool2d_forward)(const Tensor& x, Tensor& y, Tensor& indices,
                             const Pool2dParams& p) = nullptr;
  void (*max_pool2d_backward)(const Tensor& gy, const Tensor& indices, Tensor& gx,
                              const Pool2dParams& p) = nullptr;
  void (*avg_pool2d_forward)(const Tensor& x, Tensor& y, const Pool2dParams& p) = nullptr;
  void (*avg_pool2d_backward)(const Tensor& gy, Tensor& gx, const Pool2dParams& p) = nullptr;
  // Output size comes from y / gy's shape; bins as PyTorch: [floor(i*H/oh), ceil((i+1)*H/oh)).
  void (*adaptive_avg_pool2d_forward)(const Tensor& x, Tensor& y) = nullptr;
  void (*adaptive_avg_pool2d_backward)(const Tensor& gy, Tensor& gx) = nullptr;

  // Training: normalise with batch statistics, write save_mean/save_invstd [C], and update
  // running_mean/var (when defined) with momentum and the unbiased batch variance.
  void (*batch_norm_forward_train)(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                   Tensor& running_mean, Tensor& running_var, float momentum,
                                   float eps) = nullptr;
  void (*batch_norm_forward_eval)(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                  const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                                  float eps) = nullptr;
  // Gradients for a training-mode forward (mean/invstd are the saved batch statistics) or an
  // eval-mode one (training=false: mean/invstd from the running statistics, constants).
  // gx, gw, gb may each be undefined when not wanted.
  void (*batch_norm_backward)(const Tensor& gy, const Tensor& x, const Tensor& weight,
                              const Tensor& mean, const Tensor& invstd, bool training, Tensor& gx,
                              Tensor& gw, Tensor& gb) = nullptr;

  void (*activation_forward)(Activation a, const Tensor& x, Tensor& y) = nullptr;
  // All four derivatives are computed from the output y.
  void (*activation_backward)(Activation a, const Tensor& y, const Tensor& gy,
                              Tensor& gx) = nullptr;

  // Inverted dropout: keep element i when Philox::uniform(seed, offset, i) >= p, scale 1/(1-p).
  // Backward regenerates the same mask from (seed, offset).
  void (*dropout_forward)(const Tensor& x, Tensor& y, float p, uint64_t seed,
                          uint64_t offset) = nullptr;
  void (*dropout_backward)(const Tensor& gy, Tensor& gx, float p, uint64_t seed,
                           uint64_t offset) = nullptr;

  void (*add)(const Tensor& a, const Tensor& b, Tensor& y) = nullptr;     // y = a + b
  void (*add_inplace)(Tensor& y, const Tensor& x, float alpha) = nullptr;  // y += alpha * x
  void (*scale_inplace)(Tensor& y, float s) = nullptr;                    // y *= s
  double (*sum_squares)(const Tensor& x) = nullptr;                       // sum of x^2
  void (*fill)(Tensor& y, float value) = nullptr;
  // Concatenation along `dim` and its inverse (split gy into the parts' shapes).
  void (*concat_forward)(const std::vector<Tensor>& xs, int64_t dim, Tensor& y) = nullptr;
  void (*concat_backward)(const Tensor& gy, int64_t dim, std::vector<Tensor>& gxs) = nullptr;

  // Softmax cross-entropy over logits [N, C] with int64 targets [N]. weight [C] may be undefined.
  // Writes the mean loss (PyTorch: divided by the sum of target weights) into loss [] and the
  // softmax into probs [N, C] for backward.
  void (*cross_entropy_forward)(const Tensor& logits, const Tensor& targets, const Tensor& weight,
                                float label_smoothing, Tensor& loss, Tensor& probs) = nullptr;
  void (*cross_entropy_backward)(const Tensor& probs, const Tensor& targets, const Tensor& weight,
                                 float label_smoothing, float grad_loss, Tensor& glogits) = nullptr;

  // Fused optimizer updates on one parameter tensor and its state tensors.
  void (*sgd_update)(Tensor& param, const Tensor& grad, Tensor& momentum_buf,
                     const SgdHyper& h) = nullptr;
  void (*rmsprop_update)(Tensor& param, const Tensor& grad, Tensor& square_avg, Tensor& grad_avg,
                         Tensor& momentum_buf, const RmspropHyper& h) = nullptr;
  void (*adam_update)(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                      const AdamHyper& h) = nullptr;
};

// The table of one backend (filled on first use by register_builtin_kernels).
KernelTable& kernel_table(Backend b);
// The table for tensors on device d under the current backend choice.
KernelTable& kernels_for(const Device& d);

// Looks up a slot and throws "<op>: backend <b> has no kernel" when it is empty.
#define ENGINE_KERNEL(device, slot)                                                         \
  (::engine::detail::require_kernel(::engine::kernels_for(device).slot, #slot, (device)))

namespace detail {
template <typename Fn>
Fn require_kernel(Fn fn, const char* slot, const Device& d) {
  ENGINE_CHECK(fn != nullptr, slot, ": backend ", backend_name(backend_for(d)),
               " has no kernel for tensors on ", d.str());
  return fn;
}
}  // namespace detail

// Whether backend b implements a slot, e.g. supports(Backend::Native, &KernelTable::add);
// lets tools and tests ask before calling.
template <typename Fn>
bool supports(Backend b, Fn KernelTable::*slot) {
  return kernel_table(b).*slot != nullptr;
}

// For the register_* functions of kernels/ only: the table being filled (no call_once).
KernelTable& kernel_table_for_registration(Backend b);

// Defined in kernels/registry.cpp: fills all backends compiled into this build.
void register_builtin_kernels();

}  // namespace engine
