// Helpers of the `cuda` test tier: the skip rule (every test that needs a GPU opens with
// ENGINE_REQUIRE_CUDA(), which skips with the reason when none answers), fresh random inputs,
// NaN-poisoned outputs, and the tier's one comparison rule, EXPECT_MATCHES (element-wise, built
// on tests/testing.h's allclose).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "engine/op_table.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "kernels/cuda/cuda_util.h"
#include "tests/testing.h"

namespace engine::testing {

// Fills the kernel tables first: that is when the CUDA allocator and copies are registered.
inline bool cuda_ready(std::string* why) {
  kernel_table(Backend::Native);
  return cuda::cuda_available(why);
}

// Odd sizes on purpose: a single element, less than a warp, and a prime above one grid's worth.
inline const std::vector<int64_t>& test_sizes() {
  static const std::vector<int64_t> sizes = {1, 31, 1000003};
  return sizes;
}

// Normal(0, stddev) on the CPU, fresh per (seed, n).
inline Tensor random_cpu(int64_t n, uint64_t seed, float stddev = 1.f) {
  Generator gen(seed * 1000003 + static_cast<uint64_t>(n));
  return Tensor::randn({n}, gen, 0.f, stddev);
}

// Approximately normal(mean, stddev): the sum of four 16-bit uniforms from one splitmix64 draw
// (Irwin-Hall), rescaled. About 50x faster than Tensor::randn's Box-Muller, which keeps the
// multi-million-element cases well inside a second; the shape of the distribution does not
// matter here.
inline Tensor fast_randn(const Shape& shape, uint64_t seed, float mean = 0.f, float stddev = 1.f) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(v.size());
  for (float& e : v) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float sum = static_cast<float>(z & 0xffff) + static_cast<float>((z >> 16) & 0xffff) +
                      static_cast<float>((z >> 32) & 0xffff) + static_cast<float>(z >> 48);
    // sum / 65536 has mean 2 and variance 4 / 12.
    e = mean + stddev * (sum * (1.f / 65536.f) - 2.f) * 1.7320508f;
  }
  return Tensor::from_vector(shape, v);
}

// A CUDA tensor of NaNs, so that any element a kernel fails to write shows in the comparison.
inline Tensor poisoned_cuda(const Shape& shape) {
  return Tensor::from_vector(
      shape, std::vector<float>(shape_numel(shape), std::numeric_limits<float>::quiet_NaN()),
      Device::cuda());
}
inline Tensor poisoned_cuda(int64_t n) { return poisoned_cuda(Shape{n}); }
// Indices poisoned with -7, a value no kernel writes.
inline Tensor poisoned_cuda_i64(const Shape& shape) {
  return Tensor::from_vector_i64(shape, std::vector<int64_t>(shape_numel(shape), -7),
                                 Device::cuda());
}

// The CUDA copy of t; undefined stays undefined (optional inputs and outputs).
inline Tensor on_cuda(const Tensor& t) { return t.defined() ? t.to(Device::cuda()) : Tensor(); }

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::abs(static_cast<double>(v)));
  return m;
}

// A tolerance: |ours - ref| <= atol * max|ref| + rtol * |ref|, element by element. atol is the
// rounding of sums, which scales with the sum's terms and not with the element (so with max|ref|);
// rtol is a few roundings of the element's own value. A norm-wise bound tol (max|ours - ref| <=
// tol * max|ref|) is implied by any rtol + atol <= tol, and a small element wrong by more than its
// own rounding still fails where rtol carries the bound.
struct Tol {
  double rtol, atol;
};
constexpr Tol kExact{0, 0};

// ENGINE_REQUIRE_GPU=1 (tools/gpu_check.sh sets it on the GPU machine): a GPU must be there, so a
// test that would skip for want of one fails instead, with the same reason. A check on a GPU
// machine cannot then read as passed because nothing ran.
inline bool gpu_required() {
  const char* e = std::getenv("ENGINE_REQUIRE_GPU");
  return e && *e && std::string(e) != "0";
}

}  // namespace engine::testing

#define ENGINE_REQUIRE_CUDA()                                                               \
  do {                                                                                      \
    std::string engine_why_;                                                                \
    if (!::engine::testing::cuda_ready(&engine_why_)) {                                     \
      if (::engine::testing::gpu_required())                                                \
        FAIL() << "no usable CUDA device (ENGINE_REQUIRE_GPU is set): " << engine_why_;     \
      GTEST_SKIP() << "no usable CUDA device: " << engine_why_;                             \
    }                                                                                       \
  } while (0)

// ours and ref element-wise within tol (a NaN or infinity on either side fails).
#define EXPECT_MATCHES(ours, ref, tol)                                                  \
  EXPECT_TRUE(::engine::testing::allclose((ours), (ref), (tol).rtol,                    \
                                          (tol).atol* ::engine::testing::max_abs(ref))) \
      << "comparing " #ours " to " #ref
