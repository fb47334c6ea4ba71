// batch_norm over x [N, C], [N, C, L] or [N, C, H, W], per channel c:
//   y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c
// Training uses the batch's mean and biased variance and updates running_mean/var in place:
// running = (1 - momentum) * running + momentum * batch, with the unbiased variance (PyTorch's
// rule); that update is state, not a differentiable op, so autograd never sees it. Eval uses
// the running statistics as constants.
// Backward (xhat = (x - mean) * invstd, m = values per channel):
//   dbias = sum(dy), dweight = sum(dy * xhat),
//   training: dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
//   eval:     dx = weight * invstd * dy.
// weight/bias may be undefined (affine off: weight 1, bias 0, and no gradient for them).
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  float momentum, float eps) {
  const char* op = "batch_norm";
  check_float(op, "input", x);
  ENGINE_CHECK(x.dim() >= 2 && x.dim() <= 4, op,
               ": input must be [N, C], [N, C, L] or [N, C, H, W], got ", shape_str(x.shape()));
  const int64_t c = x.size(1);
  ENGINE_CHECK(c > 0, op, ": input has no channels: ", shape_str(x.shape()));
  auto check_channel_vector = [&](const char* what, const Tensor& t) {
    if (!t.defined()) return;
    check_float(op, what, t);
    check_same_device(op, x, t);
    ENGINE_CHECK(t.dim() == 1 && t.size(0) == c, op, ": ", what, " ", shape_str(t.shape()),
                 " does not match the ", c, " channels of input ", shape_str(x.shape()));
  };
  check_channel_vector("weight", weight);
  check_channel_vector("bias", bias);
  check_channel_vector("running_mean", running_mean);
  check_channel_vector("running_var", running_var);
  ENGINE_CHECK(std::isfinite(eps) && eps >= 0.f, op, ": eps must be finite and >= 0, got ", eps,
               " (input ", shape_str(x.shape()), ")");
  ENGINE_CHECK(momentum >= 0.f && momentum <= 1.f, op, ": momentum must be in [0, 1], got ",
               momentum, " (input ", shape_str(x.shape()), ")");

  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  Tensor mean, invstd;  // what backward normalises with
  if (training) {
    ENGINE_CHECK(x.numel() / c > 1, op,
                 ": expected more than 1 value per channel when training, got input ",
                 shape_str(x.shape()));
    mean = Tensor::empty({c}, DType::F32, x.device());
    invstd = Tensor::empty({c}, DType::F32, x.device());
    Tensor rm = running_mean, rv = running_var;  // handles to the caller's buffers
    auto train = ENGINE_KERNEL(x.device(), batch_norm_forward_train);
    train(x, weight, bias, y, mean, invstd, rm, rv, momentum, eps);
  } else {
    ENGINE_CHECK(running_mean.defined() && running_var.defined(), op,
                 ": running_mean and running_var are required in eval mode (input ",
                 shape_str(x.shape()), ")");
    auto eval = ENGINE_KERNEL(x.device(), batch_norm_forward_eval);
    eval(x, weight, bias, running_mean, running_var, y, eps);
  }

  if (autograd::needs_record({&x, &weight, &bias})) {
    if (!training) {
      // Snapshot the statistics backward treats as constants (a later training-mode call updates
      // the buffers in place). invstd = 1 / sqrt(var + eps) comes from the eval kernel applied to
      // a row of ones with zero mean, which keeps it on the device with no host round trip.
      mean = running_mean.clone();
      Tensor ones = Tensor::full({1, c}, 1.f, x.device());
      Tensor zero_mean = Tensor::zeros({c}, DType::F32, x.device());
      Tensor inv = Tensor::empty({1, c}, DType::F32, x.device());
      auto eval = ENGINE_KERNEL(x.device(), batch_norm_forward_eval);
      eval(ones, Tensor(), Tensor(), zero_mean, running_var, inv, eps);
      invstd = inv.reshape({c});
    }
    Tensor xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor();
    const bool has_weight = weight.defined(), has_bias = bias.defined();
    autograd::record(op, y, {&x, &weight, &bias},
                     [xs, ws, mean, invstd, training, has_weight, has_bias](
                         const Tensor& gy, const std::vector<bool>& needs) {
                       std::vector<Tensor> g(3);
                       Device d = gy.device();
                       const int64_t ch = xs.size(1);
                       if (needs[0]) g[0] = Tensor::empty(xs.shape(), DType::F32, d);
                       if (has_weight && needs[1]) g[1] = Tensor::empty({ch}, DType::F32, d);
                       if (has_bias && needs[2]) g[2] = Tensor::empty({ch}, DType::F32, d);
                       auto backward = ENGINE_KERNEL(d, batch_norm_backward);
                       backward(gy, xs, ws, mean, invstd, training, g[0], g[1], g[2]);
                       return g;
                     });
  }
  return y;
}

}  // namespace engine
