// CPU batch normalisation over x [N, C, *] (any number of trailing spatial dims, including none).
// Channel c's elements are N runs of S = prod(spatial) contiguous floats, one per sample.
// Training forward is three passes per channel, each thread owning whole channels: the mean, the
// sum of squared deviations from it (two-pass, so var is accurate even when |mean| >> std), and
// y = (x - mean) * invstd * w + b. For [8, 64, 64, 64] one channel is 128 KiB, so passes two and
// three read it from L2, and the op costs about one read and one write of x from memory.
// Statistics are accumulated in double. Backward is two passes per channel: sum(gy) and
// sum(gy * (x - mean)), then gx. Last measured on [8, 64, 64, 64], one thread: training forward
// 0.7 ms, eval forward 0.3 ms, backward 3 ms, where an 8 MiB copy takes 0.5 ms.
#include <cmath>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

struct Layout {
  int64_t n, c, s;  // batch, channels, elements per (sample, channel)
};

Layout layout(const Tensor& x) {
  Layout l{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.dim(); ++d) l.s *= x.size(d);
  return l;
}

// y = (x - mean) * scale + shift over channel c's runs; the common tail of both forward modes.
// Centring first (rather than folding into x * scale + shift') keeps float rounding relative to
// the normalised value, not to |mean| / std.
void normalise_channel(const float* xc, float* yc, const Layout& l, float mean, float scale,
                       float shift) {
  for (int64_t n = 0; n < l.n; ++n) {
    const float* xr = xc + n * l.c * l.s;
    float* yr = yc + n * l.c * l.s;
#pragma omp simd
    for (int64_t i = 0; i < l.s; ++i) yr[i] = (xr[i] - mean) * scale + shift;
  }
}

void batch_norm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                              Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps) {
  const Layout l = layout(x);
  const float *xp = fptr(x), *wp = fptr(weight), *bp = fptr(bias);
  float *yp = fptr(y), *mp = fptr(save_mean), *ip = fptr(save_invstd);
  float *rmp = fptr(running_mean), *rvp = fptr(running_var);
  const double m = static_cast<double>(l.n * l.s);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
  for (int64_t c = 0; c < l.c; ++c) {
    const float* xc = xp + c * l.s;
    double sum = 0;
    for (int64_t n = 0; n < l.n; ++n) {
      const float* xr = xc + n * l.c * l.s;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < l.s; ++i) sum += xr[i];
    }
    const double mean = sum / m;
    double ssd = 0;
    for (int64_t n = 0; n < l.n; ++n) {
      const float* xr = xc + n * l.c * l.s;
#pragma omp simd reduction(+ : ssd)
      for (int64_t i = 0; i < l.s; ++i) {
        const double d = xr[i] - mean;
        ssd += d * d;
      }
    }
    const double invstd = 1.0 / std::sqrt(ssd / m + eps);
    mp[c] = static_cast<float>(mean);
    ip[c] = static_cast<float>(invstd);
    // Running statistics track the unbiased variance, as PyTorch does (m > 1 is checked by the op).
    if (rmp) rmp[c] = static_cast<float>((1.0 - momentum) * rmp[c] + momentum * mean);
    if (rvp) rvp[c] = static_cast<float>((1.0 - momentum) * rvp[c] + momentum * ssd / (m - 1));
    normalise_channel(xc, yp + c * l.s, l, static_cast<float>(mean),
                      static_cast<float>(invstd * (wp ? wp[c] : 1.0)), bp ? bp[c] : 0.f);
  }
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                             float eps) {
  const Layout l = layout(x);
  const float *xp = fptr(x), *wp = fptr(weight), *bp = fptr(bias);
  const float *rmp = fptr(running_mean), *rvp = fptr(running_var);
  float* yp = fptr(y);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
  for (int64_t c = 0; c < l.c; ++c) {
    const double scale = (wp ? wp[c] : 1.0) / std::sqrt(static_cast<double>(rvp[c]) + eps);
    normalise_channel(xp + c * l.s, yp + c * l.s, l, rmp[c], static_cast<float>(scale),
                      bp ? bp[c] : 0.f);
  }
}

// Training: gx = w * invstd * (gy - mean(gy) - (x - mean) * invstd^2 * mean(gy * (x - mean))).
// Eval (mean, invstd are constants): gx = w * invstd * gy. In both, gw = invstd * sum(gy * (x -
// mean)) and gb = sum(gy).
void batch_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& weight,
                         const Tensor& mean, const Tensor& invstd, bool training, Tensor& gx,
                         Tensor& gw, Tensor& gb) {
  const Layout l = layout(x);
  const float *gyp = fptr(gy), *xp = fptr(x), *wp = fptr(weight);
  const float *mp = fptr(mean), *ip = fptr(invstd);
  float *gxp = fptr(gx), *gwp = fptr(gw), *gbp = fptr(gb);
  const bool need_sums = training || gwp || gbp;
  const double m = static_cast<double>(l.n * l.s);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
  for (int64_t c = 0; c < l.c; ++c) {
    const float* xc = xp + c * l.s;
    const float* gyc = gyp + c * l.s;
    const double mu = mp[c], is = ip[c], w = wp ? wp[c] : 1.0;
    double sum_gy = 0, dot = 0;  // sum(gy), sum(gy * (x - mean))
    if (need_sums) {
      for (int64_t n = 0; n < l.n; ++n) {
        const float* xr = xc + n * l.c * l.s;
        const float* gr = gyc + n * l.c * l.s;
#pragma omp simd reduction(+ : sum_gy, dot)
        for (int64_t i = 0; i < l.s; ++i) {
          sum_gy += gr[i];
          dot += gr[i] * (xr[i] - mu);
        }
      }
    }
    if (gwp) gwp[c] = static_cast<float>(dot * is);
    if (gbp) gbp[c] = static_cast<float>(sum_gy);
    if (!gxp) continue;
    // gx = (gy - gy_mean) * k - (x - mean) * kx with per-channel constants.
    const float k = static_cast<float>(w * is), muf = static_cast<float>(mu);
    const float gy_mean = training ? static_cast<float>(sum_gy / m) : 0.f;
    const float kx = training ? static_cast<float>(w * is * is * is * dot / m) : 0.f;
    for (int64_t n = 0; n < l.n; ++n) {
      const float* xr = xc + n * l.c * l.s;
      const float* gr = gyc + n * l.c * l.s;
      float* gxr = gxp + c * l.s + n * l.c * l.s;
#pragma omp simd
      for (int64_t i = 0; i < l.s; ++i) gxr[i] = (gr[i] - gy_mean) * k - (xr[i] - muf) * kx;
    }
  }
}

}  // namespace

void register_batch_norm(KernelTable& t) {
  t.batch_norm_forward_train = batch_norm_forward_train;
  t.batch_norm_forward_eval = batch_norm_forward_eval;
  t.batch_norm_backward = batch_norm_backward;
}

}  // namespace engine::cpu
