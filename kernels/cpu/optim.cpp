// CPU fused optimizer updates: SGD (momentum, dampening, Nesterov), RMSprop (centered, momentum)
// and Adam/AdamW, one pass over a parameter and its state per call. Each follows the operation
// order of PyTorch 1.13's single-tensor (foreach=False) implementation in float, with the scalar
// factors PyTorch computes in Python (bias corrections, step size) computed here in double, so
// results agree with PyTorch to a few float roundings. Memory-bound: Adam reads 4 and writes 3
// floats per element (28 bytes), about 11 flops.
#include <cmath>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdHyper& h) {
  float* p = fptr(param);
  const float* g = fptr(grad);
  float* buf = fptr(momentum_buf);
  const int64_t n = param.numel();
  const float lr = h.lr, wd = h.weight_decay, m = h.momentum;
  // PyTorch computes 1 - dampening as a Python float and rounds it once.
  const float one_minus_damp = static_cast<float>(1.0 - h.dampening);
  const bool first = h.first_step, nesterov = h.nesterov, use_momentum = h.momentum != 0.0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (wd != 0.f) d = d + wd * p[i];
    if (use_momentum) {
      // The first step starts the buffer at d, undamped, as PyTorch does.
      const float b = first ? d : buf[i] * m + one_minus_damp * d;
      buf[i] = b;
      d = nesterov ? d + m * b : b;
    }
    p[i] = p[i] + (-lr) * d;
  }
}

void rmsprop_update(Tensor& param, const Tensor& grad, Tensor& square_avg, Tensor& grad_avg,
                    Tensor& momentum_buf, const RmspropHyper& h) {
  float* p = fptr(param);
  const float* g = fptr(grad);
  float* sa = fptr(square_avg);
  float* ga = fptr(grad_avg);
  float* buf = fptr(momentum_buf);
  const int64_t n = param.numel();
  const float lr = h.lr, alpha = h.alpha, eps = h.eps, wd = h.weight_decay, m = h.momentum;
  const float one_minus_alpha = static_cast<float>(1.0 - h.alpha);
  const bool centered = h.centered, use_momentum = h.momentum > 0.0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (wd != 0.f) d = d + wd * p[i];
    const float s = sa[i] * alpha + one_minus_alpha * d * d;
    sa[i] = s;
    float avg;
    if (centered) {
      const float a = ga[i] * alpha + one_minus_alpha * d;
      ga[i] = a;
      avg = std::sqrt(s + (-1.f) * a * a);
    } else {
      avg = std::sqrt(s);
    }
    avg = avg + eps;
    if (use_momentum) {
      const float b = buf[i] * m + d / avg;
      buf[i] = b;
      p[i] = p[i] + (-lr) * b;
    } else {
      p[i] = p[i] + (-lr) * d / avg;
    }
  }
}

void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                 const AdamHyper& h) {
  float* p = fptr(param);
  const float* g = fptr(grad);
  float* m = fptr(exp_avg);
  float* v = fptr(exp_avg_sq);
  const int64_t n = param.numel();
  const double step = static_cast<double>(h.step);
  const double bc1 = 1.0 - std::pow(h.beta1, step);
  const double bc2 = 1.0 - std::pow(h.beta2, step);
  const float neg_step_size = static_cast<float>(-(h.lr / bc1));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = h.beta1, b2 = h.beta2, eps = h.eps, wd = h.weight_decay;
  const float one_minus_b1 = static_cast<float>(1.0 - h.beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - h.beta2);
  const bool decoupled = h.decoupled, coupled_wd = !h.decoupled && wd != 0.f;
  const float decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    float pi = p[i];
    if (decoupled) pi = pi * decay;
    if (coupled_wd) d = d + wd * pi;
    const float mi = m[i] * b1 + one_minus_b1 * d;
    const float vi = v[i] * b2 + one_minus_b2 * d * d;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi + neg_step_size * mi / denom;
  }
}

}  // namespace

void register_optim(KernelTable& t) {
  t.sgd_update = sgd_update;
  t.rmsprop_update = rmsprop_update;
  t.adam_update = adam_update;
}

}  // namespace engine::cpu
