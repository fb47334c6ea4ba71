// Helpers shared by the CPU kernels: raw pointers and a parallel-for that stays serial for small
// work (an OpenMP fork costs microseconds; a 64-element loop does not need it), and the
// activations as scalar functions, shared by the activation kernels and conv2d's epilogue so that
// both compute the same float for the same input.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/op_table.h"
#include "engine/tensor.h"

namespace engine::cpu {

inline float* fptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Below this many elements a loop runs on one thread.
constexpr int64_t kParallelGrain = 32768;

// Scratch buffers reused across calls (one set per calling thread; the conv kernels use slots
// 0-2): a fresh 96 MB allocation per convolution would cost page faults on every step.
inline float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[4];
  auto& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(n);
  return b.data();
}

// C = op(A) op(B) + beta C, row-major, through OpenBLAS, with beta = 0 handled here: for beta = 0
// OpenBLAS clears C in a pass of its own (sgemm_beta, 9% of a quarter-width training step in
// perf), which a parallel fill followed by beta = 1 does in a fraction of the time (the step
// 0.118 s -> 0.108 s, bench/RESULTS.md).
inline void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (beta == 0.f) {
#pragma omp parallel for schedule(static) if (m * n > kParallelGrain)
    for (int64_t r = 0; r < m; ++r) std::fill(c + r * ldc, c + r * ldc + n, 0.f);
    beta = 1.f;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
}

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

// y = f(x) for one activation, as a function object so that loops templated on it inline it and
// carry no switch (the activation_forward kernel and conv2d's output pass). Comparisons are
// written so that NaN propagates, as in PyTorch (x < 0 is false for NaN).
template <Activation A>
struct ActivationFn {
  float operator()(float v) const {
    if constexpr (A == Activation::ReLU) {
      return v < 0.f ? 0.f : v;
    } else if constexpr (A == Activation::ReLU6) {
      return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    } else if constexpr (A == Activation::Sigmoid) {
      // exp(-v) overflows to inf for v < -88 and gives exactly 0, the right limit.
      return 1.f / (1.f + exp_cephes(-v));
    } else {
      return tanh_cephes(v);
    }
  }
};
struct IdentityFn {
  float operator()(float v) const { return v; }
};

// Calls f(fn) with fn the ActivationFn of a, or IdentityFn when a is empty: the dispatch from a
// run-time choice (Conv2dParams::activation) to a loop compiled for it.
template <typename F>
void with_activation(const std::optional<Activation>& a, F&& f) {
  if (!a) return f(IdentityFn{});
  switch (*a) {
    case Activation::ReLU:
      return f(ActivationFn<Activation::ReLU>{});
    case Activation::ReLU6:
      return f(ActivationFn<Activation::ReLU6>{});
    case Activation::Sigmoid:
      return f(ActivationFn<Activation::Sigmoid>{});
    case Activation::Tanh:
      return f(ActivationFn<Activation::Tanh>{});
  }
}

// One register_<family> per family of engine/op_list.h, defined in kernels/cpu/<family>.cpp.
#define ENGINE_FAMILY(family, native_col, cudnn_col) void register_##family(KernelTable& t);
#include "engine/op_list.h"

}  // namespace engine::cpu
