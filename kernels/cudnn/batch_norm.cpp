// cuDNN batch normalisation, CUDNN_BATCHNORM_SPATIAL (one mean/variance per channel over N and
// every spatial position): cudnnBatchNormalizationForwardTraining / ForwardInference / Backward.
// x [N, C, *] is described as [N, C, S, 1] with S the product of the spatial dims (1 for [N, C]).
// cuDNN's conventions match the slots': its saved "inverse variance" is 1/sqrt(var + eps) of the
// biased batch variance (save_invstd), its running variance is updated with the unbiased one, and
// exponentialAverageFactor is PyTorch's momentum (running = (1 - m) * running + m * batch).
// Differences it needs bridged:
// - weight/bias may be undefined (affine off); cuDNN always scales and shifts, so it gets cached
//   vectors of ones and zeros.
// - running_mean/var may be undefined; cuDNN accepts null for both together only, so a lone one
//   gets a scratch partner whose update is discarded.
// - backward wants gx, gw and gb only when defined; cuDNN always writes all three, so unwanted ones
//   go to scratch.
// - backward for an eval-mode forward (training=false: gx = w * invstd * gy with constant
//   statistics) is not what cudnnBatchNormalizationBackward computes (it differentiates through
//   the batch statistics), so that case runs the native kernel.
// Statistics are accumulated by cuDNN in float where the CPU reference uses double: they agree to
// ~1e-6 relative for inputs whose mean is not far larger than their spread.
//
// Memory-bound: on [32, 64, 112, 112] (103 MB) training forward reads x twice and writes y, 308 MB
// or 64 us at the H200's 4.8 TB/s; backward reads x and gy twice and writes gx, 514 MB or 107 us.
// Fraction of the ceiling reached: not yet measured on a GPU.
#include "kernels/cudnn/cudnn_util.h"

namespace engine::cudnn {
namespace {

using cuda::fptr;

const float kOne = 1.f, kZero = 0.f;

// Handed to the backward call, which reads epsilon only to recompute the batch statistics when
// no saved ones are given. We always give the saved mean and invstd, so the value is a formality
// (the slot does not carry the forward's eps); PyTorch's default, should a cuDNN version read it.
constexpr double kBackwardEps = 1e-5;

TensorDesc data_desc(const Tensor& x) {
  int64_t s = 1;
  for (int64_t d = 2; d < x.dim(); ++d) s *= x.size(d);
  return tensor_desc(x.size(0), x.size(1), s, 1);
}

// Per-channel vectors ([C] in the slots) as cuDNN's [1, C, 1, 1].
TensorDesc channel_desc(int64_t c) { return tensor_desc(1, c, 1, 1); }

const float* scale_or_ones(const Tensor& weight, int64_t c) {
  return weight.defined() ? fptr(weight) : ones(c);
}
const float* shift_or_zeros(const Tensor& bias, int64_t c) {
  return bias.defined() ? fptr(bias) : zeros(c);
}

void batch_norm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                              Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps) {
  if (!fits_cudnn({&x})) {
    return ENGINE_NATIVE_KERNEL(batch_norm_forward_train)(
        x, weight, bias, y, save_mean, save_invstd, running_mean, running_var, momentum, eps);
  }
  if (x.numel() == 0) return;
  const int64_t c = x.size(1);
  const TensorDesc xd = data_desc(x), cd = channel_desc(c);
  float* rm = fptr(running_mean);
  float* rv = fptr(running_var);
  const cuda::Scratch partner((rm == nullptr) != (rv == nullptr) ? c * sizeof(float) : 0);
  if (!rm && rv) rm = partner.as<float>();
  if (rm && !rv) rv = partner.as<float>();
  ENGINE_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      handle(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, xd, fptr(x), xd, fptr(y), cd,
      scale_or_ones(weight, c), shift_or_zeros(bias, c), static_cast<double>(momentum), rm, rv,
      static_cast<double>(eps), fptr(save_mean), fptr(save_invstd)));
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                             float eps) {
  if (!fits_cudnn({&x})) {
    return ENGINE_NATIVE_KERNEL(batch_norm_forward_eval)(x, weight, bias, running_mean, running_var,
                                                         y, eps);
  }
  if (x.numel() == 0) return;
  const int64_t c = x.size(1);
  const TensorDesc xd = data_desc(x), cd = channel_desc(c);
  ENGINE_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      handle(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, xd, fptr(x), xd, fptr(y), cd,
      scale_or_ones(weight, c), shift_or_zeros(bias, c), fptr(running_mean), fptr(running_var),
      static_cast<double>(eps)));
}

void batch_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& weight,
                         const Tensor& mean, const Tensor& invstd, bool training, Tensor& gx,
                         Tensor& gw, Tensor& gb) {
  if (!training || !fits_cudnn({&x})) {
    return ENGINE_NATIVE_KERNEL(batch_norm_backward)(gy, x, weight, mean, invstd, training, gx, gw,
                                                     gb);
  }
  if (!gx.defined() && !gw.defined() && !gb.defined()) return;
  if (x.numel() == 0) return;
  const int64_t c = x.size(1);
  const size_t channel_bytes = static_cast<size_t>(c) * sizeof(float);
  const cuda::Scratch gx_unwanted(gx.defined() ? 0 : x.nbytes());
  const cuda::Scratch gw_unwanted(gw.defined() ? 0 : channel_bytes);
  const cuda::Scratch gb_unwanted(gb.defined() ? 0 : channel_bytes);
  float* gxp = gx.defined() ? fptr(gx) : gx_unwanted.as<float>();
  float* gwp = gw.defined() ? fptr(gw) : gw_unwanted.as<float>();
  float* gbp = gb.defined() ? fptr(gb) : gb_unwanted.as<float>();
  const TensorDesc xd = data_desc(x), cd = channel_desc(c);
  // alpha/beta pairs: gx = 1 * dx + 0 * gx, and likewise for the parameter gradients (overwrite).
  ENGINE_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      handle(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, xd, fptr(x), xd, fptr(gy),
      xd, gxp, cd, scale_or_ones(weight, c), gwp, gbp, kBackwardEps, fptr(mean), fptr(invstd)));
}

}  // namespace

void register_batch_norm(KernelTable& t) {
  t.batch_norm_forward_train = batch_norm_forward_train;
  t.batch_norm_forward_eval = batch_norm_forward_eval;
  t.batch_norm_backward = batch_norm_backward;
}

}  // namespace engine::cudnn
