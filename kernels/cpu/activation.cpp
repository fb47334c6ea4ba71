// CPU activations (relu, relu6, sigmoid, tanh) and their derivatives, all computed from the saved
// output y so backward needs no copy of the input. One vectorised pass each: 8 bytes moved per
// element forward, 12 backward. sigmoid and tanh use Cephes' expf/tanhf polynomials (max relative
// error ~1.5e-7 against double precision) in place of libm, which does not vectorise: for
// [8, 64, 64, 64] on one core, tanh took 1.8 ms against 44 ms for std::tanh, sigmoid 1.2 ms
// against 10 ms.
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

// exp(x) as 2^n e^r with n = round(x / ln 2), |r| <= ln(2)/2 and e^r a degree-7 polynomial
// (Cephes expf). Branch-free so that `omp simd` loops vectorise it; std::floor would block that in
// GCC 12, std::nearbyint does not. Overflows to inf a little early (x > 88.03), which no caller
// here can tell from the true 3e38; underflows to 0 below -87.3. NaN propagates.
inline float exp_cephes(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  const float fx = std::nearbyint(x * 1.44269504088896341f);
  x -= fx * 0.693359375f;  // ln 2 split in two so that r keeps its low bits
  x -= fx * -2.12194440e-4f;
  float p = 1.9875691500e-4f;  // Horner, highest power first
  p = p * x + 1.3981999507e-3f;
  p = p * x + 8.3334519073e-3f;
  p = p * x + 4.1665795894e-2f;
  p = p * x + 1.6666665459e-1f;
  p = p * x + 5.0000001201e-1f;
  const float er = p * x * x + x + 1.f;
  // fx is in [-126, 128] unless x is NaN; the select keeps the float-to-int conversion defined.
  const int32_t n = static_cast<int32_t>(fx > -127.f ? fx : -127.f);
  return er * std::bit_cast<float>((n + 127) << 23);
}

// Cephes tanhf: an odd polynomial below |x| = 0.625, where 1 - 2/(e^2x + 1) would cancel, and that
// formula above. Keeps the sign of zero, as PyTorch does.
inline float tanh_cephes(float x) {
  const float a = std::fabs(x);
  const float big = 1.f - 2.f / (exp_cephes(2.f * a) + 1.f);
  const float z = x * x;
  float q = -5.70498872745e-3f;
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const float small = q * z * a + a;
  return std::copysign(a < 0.625f ? small : big, x);
}

template <typename F>
void map1(const float* x, float* y, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <typename F>
void map2(const float* a, const float* b, float* y, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  const float* xp = fptr(x);
  float* yp = fptr(y);
  const int64_t n = x.numel();
  // Comparisons are written so that NaN propagates, as in PyTorch (x < 0 is false for NaN).
  switch (a) {
    case Activation::ReLU:
      map1(xp, yp, n, [](float v) { return v < 0.f ? 0.f : v; });
      break;
    case Activation::ReLU6:
      map1(xp, yp, n, [](float v) { return v < 0.f ? 0.f : (v > 6.f ? 6.f : v); });
      break;
    case Activation::Sigmoid:
      // exp(-v) overflows to inf for v < -88 and gives exactly 0, the right limit.
      map1(xp, yp, n, [](float v) { return 1.f / (1.f + exp_cephes(-v)); });
      break;
    case Activation::Tanh:
      map1(xp, yp, n, [](float v) { return tanh_cephes(v); });
      break;
  }
}

// The derivative at a kink is PyTorch's: zero at relu's 0 and at relu6's 0 and 6.
void activation_backward(Activation a, const Tensor& y, const Tensor& gy, Tensor& gx) {
  const float *yp = fptr(y), *gp = fptr(gy);
  float* gxp = fptr(gx);
  const int64_t n = y.numel();
  switch (a) {
    case Activation::ReLU:
      map2(yp, gp, gxp, n, [](float v, float g) { return v > 0.f ? g : 0.f; });
      break;
    case Activation::ReLU6:
      map2(yp, gp, gxp, n, [](float v, float g) { return v > 0.f && v < 6.f ? g : 0.f; });
      break;
    case Activation::Sigmoid:
      map2(yp, gp, gxp, n, [](float v, float g) { return g * v * (1.f - v); });
      break;
    case Activation::Tanh:
      map2(yp, gp, gxp, n, [](float v, float g) { return g * (1.f - v * v); });
      break;
  }
}

}  // namespace

void register_activation(KernelTable& t) {
  t.activation_forward = activation_forward;
  t.activation_backward = activation_backward;
}

}  // namespace engine::cpu
