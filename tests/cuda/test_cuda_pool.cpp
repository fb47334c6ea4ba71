// Native CUDA pooling against the CPU kernels on the same random inputs, outputs poisoned (NaN, and
// -7 for indices). Windows: 2x2/2, ResNet's stem 3x3/2 pad 1, ceil_mode with partial last windows,
// overlapping 3x3/1, 1x1/2 (inputs no window covers), a rectangular 2x3 window with stride (1, 2),
// odd H/W, batch 1, and a plane count above one grid's worth of threads in backward. Max pooling
// also runs on inputs rounded to a few integers (many ties: the first maximum in row-major order
// must win) and on inputs with NaNs and an all -inf plane. Adaptive pooling: to 1x1 (the
// warp-per-plane path) from 1x1, 2x2, 7x7, odd and 32x32 planes; to 7x7 from 7x7, 9x11 and 13x13;
// to sizes that do not divide (3x4 from 10x10, 5x2 from 8x9) and that exceed the input (7x7 from
// 5x5, 2x3 from 1x1: overlapping bins).
// Tolerances: max pooling values, indices and gradients exact (same window order, same additions
// in the same order). Average and adaptive pooling 1e-6 relative to max|ref|: the kernels add in
// the CPU's order, so only global pooling (a warp tree against the CPU's vectorised sum) should
// differ at all, by ~1e-7 for planes up to 1024 elements; inputs there have mean 0.5 (pooled
// activations mostly follow a ReLU) so that max|ref| does not shrink like 1/sqrt(plane).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

Tensor randn(const Shape& s, uint64_t seed, float mean = 0.f) {
  Generator gen(seed);
  return Tensor::randn(s, gen, mean, 1.f);
}

Tensor poisoned(const Shape& s) {
  return Tensor::from_vector(s, std::vector<float>(shape_numel(s), kNaN), Device::cuda());
}

Tensor poisoned_i64(const Shape& s) {
  return Tensor::from_vector_i64(s, std::vector<int64_t>(shape_numel(s), -7), Device::cuda());
}

// Element-wise identical, NaN matching NaN; reports the first difference.
void expect_identical(const Tensor& ours, const Tensor& ref) {
  ASSERT_EQ(ours.shape(), ref.shape());
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]));
    ASSERT_TRUE(same) << "element " << i << ": ours " << a[i] << ", reference " << b[i];
  }
}

void expect_identical_i64(const Tensor& ours, const Tensor& ref) {
  ASSERT_EQ(ours.shape(), ref.shape());
  const std::vector<int64_t> a = ours.to_vector_i64(), b = ref.to_vector_i64();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(a[i], b[i]) << "index " << i << " of " << a.size();
}

struct Case {
  Shape x;
  Pool2dParams p;
};

Pool2dParams window(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                    bool ceil_mode) {
  Pool2dParams p;
  p.kernel_h = kh, p.kernel_w = kw, p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
  p.ceil_mode = ceil_mode;
  return p;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{2, 3, 8, 8}, window(2, 2, 2, 2, 0, 0, false)},
      {{1, 5, 9, 7}, window(2, 2, 2, 2, 0, 0, false)},  // odd: the last row and column unused
      {{2, 4, 17, 15}, window(3, 3, 2, 2, 1, 1, false)},
      {{2, 64, 112, 112}, window(3, 3, 2, 2, 1, 1, false)},  // the stem; 1.6M inputs
      {{1, 3, 8, 8}, window(3, 3, 2, 2, 0, 0, true)},
      {{2, 2, 7, 9}, window(2, 2, 2, 2, 0, 0, true)},
      {{1, 3, 10, 11}, window(3, 3, 2, 2, 1, 1, true)},
      {{1, 3, 9, 10}, window(3, 3, 1, 1, 1, 1, false)},
      {{1, 2, 7, 7}, window(1, 1, 2, 2, 0, 0, false)},
      {{2, 3, 9, 11}, window(2, 3, 1, 2, 1, 1, true)},
  };
  return c;
}

Shape out_shape(const Case& c) {
  const Pool2dParams& p = c.p;
  return {c.x[0], c.x[1],
          conv_out_size("test", c.x[2], p.kernel_h, p.stride_h, p.pad_h, 1, p.ceil_mode, c.x),
          conv_out_size("test", c.x[3], p.kernel_w, p.stride_w, p.pad_w, 1, p.ceil_mode, c.x)};
}

std::string label(const Case& c) {
  const Pool2dParams& p = c.p;
  return shape_str(c.x) + " kernel " + std::to_string(p.kernel_h) + "x" +
         std::to_string(p.kernel_w) + " stride " + std::to_string(p.stride_h) + "," +
         std::to_string(p.stride_w) + " pad " + std::to_string(p.pad_h) + "," +
         std::to_string(p.pad_w) + (p.ceil_mode ? " ceil" : "") +
         (p.count_include_pad ? "" : " exclude-pad");
}

// Forward (values and indices) and backward (from the reference indices) of max pooling on x.
void check_max_pool(const Tensor& x, const Case& c, uint64_t seed) {
  const Shape out = out_shape(c);
  Tensor y_ref = Tensor::empty(out), i_ref = Tensor::empty(out, DType::I64);
  cpu_k().max_pool2d_forward(x, y_ref, i_ref, c.p);
  Tensor y = poisoned(out), idx = poisoned_i64(out);
  gpu_k().max_pool2d_forward(x.to(Device::cuda()), y, idx, c.p);
  expect_identical(y, y_ref);
  expect_identical_i64(idx, i_ref);

  Tensor gy = randn(out, seed + 1);
  Tensor gx_ref = Tensor::empty(c.x);
  cpu_k().max_pool2d_backward(gy, i_ref, gx_ref, c.p);
  Tensor gx = poisoned(c.x);
  gpu_k().max_pool2d_backward(gy.to(Device::cuda()), i_ref.to(Device::cuda()), gx, c.p);
  expect_identical(gx, gx_ref);
}

TEST(CudaPool, MaxPoolMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    SCOPED_TRACE(label(c));
    check_max_pool(randn(c.x, seed), c, seed);
    seed += 10;
  }
}

// Integers in [-4, 4]: most windows hold their maximum more than once.
TEST(CudaPool, MaxPoolTiesPickTheFirstMaximum) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 200;
  for (const Case& c : cases()) {
    SCOPED_TRACE(label(c));
    std::vector<float> v = randn(c.x, seed).to_vector();
    for (float& e : v) e = std::max(-4.f, std::min(4.f, std::round(e * 1.5f)));
    check_max_pool(Tensor::from_vector(c.x, v), c, seed);
    seed += 10;
  }
}

// NaN wins its window (the last NaN's index is kept); a window of -inf keeps its first element.
TEST(CudaPool, MaxPoolNanAndMinusInfinity) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 300;
  for (const Case& c : cases()) {
    SCOPED_TRACE(label(c));
    std::vector<float> v = randn(c.x, seed).to_vector();
    const size_t plane = static_cast<size_t>(c.x[2] * c.x[3]);
    for (size_t i = 0; i < v.size(); ++i) {
      if (i < plane) {
        v[i] = -std::numeric_limits<float>::infinity();
      } else if (i % 7 == 3) {
        v[i] = kNaN;
      }
    }
    check_max_pool(Tensor::from_vector(c.x, v), c, seed);
    seed += 10;
  }
}

TEST(CudaPool, AvgPoolMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 400;
  for (Case c : cases()) {
    for (bool include_pad : {true, false}) {
      c.p.count_include_pad = include_pad;
      SCOPED_TRACE(label(c));
      const Shape out = out_shape(c);
      Tensor x = randn(c.x, seed, 0.5f), gy = randn(out, seed + 1);
      seed += 10;
      Tensor y_ref = Tensor::empty(out);
      cpu_k().avg_pool2d_forward(x, y_ref, c.p);
      Tensor y = poisoned(out);
      gpu_k().avg_pool2d_forward(x.to(Device::cuda()), y, c.p);
      EXPECT_CLOSE(y, y_ref, 1e-6);

      Tensor gx_ref = Tensor::empty(c.x);
      cpu_k().avg_pool2d_backward(gy, gx_ref, c.p);
      Tensor gx = poisoned(c.x);
      gpu_k().avg_pool2d_backward(gy.to(Device::cuda()), gx, c.p);
      EXPECT_CLOSE(gx, gx_ref, 1e-6);
    }
  }
}

TEST(CudaPool, AdaptiveAvgPoolMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  struct Adaptive {
    Shape x;
    int64_t oh, ow;
  };
  // clang-format off
  const Adaptive all[] = {
      {{3, 2, 1, 1}, 1, 1},
      {{8, 1280, 2, 2}, 1, 1},  // MobileNetV2's head at 64x64 inputs
      {{4, 2048, 7, 7}, 1, 1},  // ResNet-50's at 224x224
      {{1, 5, 13, 11}, 1, 1},
      {{2, 4, 32, 32}, 1, 1},
      {{2, 3, 7, 7}, 7, 7},
      {{1, 4, 9, 11}, 7, 7},
      {{2, 3, 13, 13}, 7, 7},
      {{2, 3, 10, 10}, 3, 4},   // bins that do not divide the input
      {{2, 2, 8, 9}, 5, 2},
      {{1, 2, 5, 5}, 7, 7},     // more bins than inputs: they overlap
      {{1, 2, 1, 1}, 2, 3},
  };
  // clang-format on
  uint64_t seed = 500;
  for (const Adaptive& a : all) {
    SCOPED_TRACE(shape_str(a.x) + " to " + std::to_string(a.oh) + "x" + std::to_string(a.ow));
    const Shape out = {a.x[0], a.x[1], a.oh, a.ow};
    Tensor x = randn(a.x, seed, 0.5f), gy = randn(out, seed + 1);
    seed += 10;
    Tensor y_ref = Tensor::empty(out);
    cpu_k().adaptive_avg_pool2d_forward(x, y_ref);
    Tensor y = poisoned(out);
    gpu_k().adaptive_avg_pool2d_forward(x.to(Device::cuda()), y);
    EXPECT_CLOSE(y, y_ref, 1e-6);

    Tensor gx_ref = Tensor::empty(a.x);
    cpu_k().adaptive_avg_pool2d_backward(gy, gx_ref);
    Tensor gx = poisoned(a.x);
    gpu_k().adaptive_avg_pool2d_backward(gy.to(Device::cuda()), gx);
    EXPECT_CLOSE(gx, gx_ref, 1e-6);
  }
}

}  // namespace
}  // namespace engine
