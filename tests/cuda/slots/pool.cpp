// The cross-backend harness's cases for the pooling slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// pooling: max pooling values, indices and gradients exact (same window order, same additions).
// Average and adaptive {5e-7, 5e-7}: the native kernels add in the CPU's order and only global
// pooling (a warp tree) differs, by ~1e-7 for planes up to 1024 elements; cuDNN adds in its
// own. Inputs have mean 0.5 (pooled activations mostly follow a ReLU) so that max|ref| does not
// shrink like 1/sqrt(plane).
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

Pool2dParams window(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                    bool ceil_mode, bool include_pad = true) {
  Pool2dParams p;
  p.kernel_h = kh, p.kernel_w = kw, p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = include_pad;
  return p;
}

// 2x2/2, ResNet's stem 3x3/2 pad 1 (1.6M inputs), ceil_mode with partial last windows (which the
// cudnn backend hands to the native kernel) and without (8 = 4 windows of 2 either way: cuDNN
// runs), overlapping 3x3/1, 1x1/2 (inputs no window covers), a rectangular 2x3 window with stride
// (1, 2), odd H/W, batch 1, and a plane count above one grid's worth of threads in backward.

void expect_same_indices(const Tensor& ours, const Tensor& ref) {
  ASSERT_EQ(ours.shape(), ref.shape());
  const std::vector<int64_t> a = ours.to_vector_i64(), b = ref.to_vector_i64();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(a[i], b[i]) << "index " << i << " of " << a.size();
}

ENGINE_SLOT_CHECK(max_pool2d_forward) {
  uint64_t seed = 100;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(pool_label(c));
    const Tensor x = randn(c.x, seed += 10);
    const Shape out = pool_out_shape(c);
    Tensor y_ref = Tensor::empty(out), i_ref = Tensor::empty(out, DType::I64);
    cpu().max_pool2d_forward(x, y_ref, i_ref, c.p);
    Tensor y = poisoned(out), idx = poisoned_cuda_i64(out);
    kernel_table(b).max_pool2d_forward(on_cuda(x), y, idx, c.p);
    EXPECT_MATCHES(y, y_ref, kExact);
    expect_same_indices(idx, i_ref);
  }
}

ENGINE_SLOT_CHECK(max_pool2d_backward) {
  uint64_t seed = 200;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(pool_label(c));
    const Tensor x = randn(c.x, seed += 10);
    const Shape out = pool_out_shape(c);
    Tensor y = Tensor::empty(out), idx = Tensor::empty(out, DType::I64);
    cpu().max_pool2d_forward(x, y, idx, c.p);  // the indices a forward saves
    const Tensor gy = randn(out, seed + 1);
    Tensor gx_ref = Tensor::empty(c.x);
    cpu().max_pool2d_backward(gy, idx, gx_ref, c.p);
    Tensor gx = poisoned(c.x);
    kernel_table(b).max_pool2d_backward(on_cuda(gy), on_cuda(idx), gx, c.p);
    EXPECT_MATCHES(gx, gx_ref, kExact);
  }
}

constexpr Tol kAvgPoolTol{5e-7, 5e-7};

// Every case with and without counting the padding.
template <typename F>
void for_avg_pool_cases(F&& f) {
  for (PoolCase c : pool_cases()) {
    for (bool include_pad : {true, false}) {
      c.p.count_include_pad = include_pad;
      SCOPED_TRACE(pool_label(c));
      f(c);
    }
  }
}

ENGINE_SLOT_CHECK(avg_pool2d_forward) {
  uint64_t seed = 400;
  for_avg_pool_cases([&](const PoolCase& c) {
    const Tensor x = randn(c.x, seed += 10, 0.5f);
    Tensor ref = Tensor::empty(pool_out_shape(c));
    cpu().avg_pool2d_forward(x, ref, c.p);
    Tensor y = poisoned(pool_out_shape(c));
    kernel_table(b).avg_pool2d_forward(on_cuda(x), y, c.p);
    EXPECT_MATCHES(y, ref, kAvgPoolTol);
  });
}

ENGINE_SLOT_CHECK(avg_pool2d_backward) {
  uint64_t seed = 500;
  for_avg_pool_cases([&](const PoolCase& c) {
    const Tensor gy = randn(pool_out_shape(c), seed += 10, 0.5f);
    Tensor ref = Tensor::empty(c.x);
    cpu().avg_pool2d_backward(gy, ref, c.p);
    Tensor gx = poisoned(c.x);
    kernel_table(b).avg_pool2d_backward(on_cuda(gy), gx, c.p);
    EXPECT_MATCHES(gx, ref, kAvgPoolTol);
  });
}

struct AdaptiveCase {
  Shape x;
  int64_t oh, ow;
};

// To 1x1 (the warp-per-plane path) from 1x1, 2x2, 7x7, odd and 32x32 planes; to 7x7 from 7x7,
// 9x11 and 13x13; uniform bins (cuDNN runs them); sizes that do not divide (handed to the native
// kernel by the cudnn backend) and that exceed the input (overlapping bins).
const std::vector<AdaptiveCase>& adaptive_cases() {
  static const std::vector<AdaptiveCase> c = {
      {{3, 2, 1, 1}, 1, 1},    {{8, 1280, 2, 2}, 1, 1},  // MobileNetV2's head at 64x64 inputs
      {{4, 2048, 7, 7}, 1, 1},                           // ResNet-50's at 224x224
      {{1, 5, 13, 11}, 1, 1},  {{2, 4, 32, 32}, 1, 1},  {{2, 5, 7, 7}, 1, 1},  {{2, 3, 7, 7}, 7, 7},
      {{1, 4, 9, 11}, 7, 7},   {{2, 3, 13, 13}, 7, 7},  {{2, 3, 8, 12}, 2, 3},  // uniform 4x4 bins
      {{2, 3, 10, 10}, 3, 4},  {{2, 2, 8, 9}, 5, 2},    {{2, 3, 7, 10}, 3, 4}, {{1, 2, 5, 5}, 7, 7},
      {{1, 2, 3, 3}, 5, 4},    {{1, 2, 1, 1}, 2, 3},
  };
  return c;
}

template <typename F>
void for_adaptive_cases(F&& f) {
  for (const AdaptiveCase& a : adaptive_cases()) {
    SCOPED_TRACE(shape_str(a.x) + " to " + std::to_string(a.oh) + "x" + std::to_string(a.ow));
    f(a.x, Shape{a.x[0], a.x[1], a.oh, a.ow});
  }
}

ENGINE_SLOT_CHECK(adaptive_avg_pool2d_forward) {
  uint64_t seed = 600;
  for_adaptive_cases([&](const Shape& in, const Shape& out) {
    const Tensor x = randn(in, seed += 10, 0.5f);
    Tensor ref = Tensor::empty(out);
    cpu().adaptive_avg_pool2d_forward(x, ref);
    Tensor y = poisoned(out);
    kernel_table(b).adaptive_avg_pool2d_forward(on_cuda(x), y);
    EXPECT_MATCHES(y, ref, kAvgPoolTol);
  });
}

ENGINE_SLOT_CHECK(adaptive_avg_pool2d_backward) {
  uint64_t seed = 700;
  for_adaptive_cases([&](const Shape& in, const Shape& out) {
    const Tensor gy = randn(out, seed += 10, 0.5f);
    Tensor ref = Tensor::empty(in);
    cpu().adaptive_avg_pool2d_backward(gy, ref);
    Tensor gx = poisoned(in);
    kernel_table(b).adaptive_avg_pool2d_backward(on_cuda(gy), gx);
    EXPECT_MATCHES(gx, ref, kAvgPoolTol);
  });
}

}  // namespace

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> c = {
      {{2, 3, 8, 8}, window(2, 2, 2, 2, 0, 0, false)},
      {{1, 5, 9, 7}, window(2, 2, 2, 2, 0, 0, false)},  // odd: the last row and column unused
      {{2, 4, 17, 15}, window(3, 3, 2, 2, 1, 1, false)},
      {{2, 64, 112, 112}, window(3, 3, 2, 2, 1, 1, false)},  // the stem
      {{1, 3, 8, 8}, window(3, 3, 2, 2, 0, 0, true)},
      {{2, 2, 7, 9}, window(2, 2, 2, 2, 0, 0, true)},
      {{1, 3, 10, 11}, window(3, 3, 2, 2, 1, 1, true)},
      {{1, 3, 9, 10}, window(3, 3, 1, 1, 1, 1, false)},
      {{1, 2, 7, 7}, window(1, 1, 2, 2, 0, 0, false)},
      {{2, 3, 9, 11}, window(2, 3, 1, 2, 1, 1, true)},
      {{1, 4, 9, 7}, window(3, 3, 2, 2, 1, 1, false)},
      {{2, 5, 11, 13}, window(3, 3, 1, 1, 1, 1, false)},
      {{1, 2, 8, 8}, window(2, 2, 2, 2, 0, 0, true)},
      {{1, 3, 9, 9}, window(2, 2, 2, 2, 0, 0, true)},
      {{2, 3, 10, 8}, window(3, 3, 2, 2, 1, 1, true)},
  };
  return c;
}

Shape pool_out_shape(const PoolCase& c) {
  const Pool2dParams& p = c.p;
  return {c.x[0], c.x[1],
          conv_out_size("test", c.x[2], p.kernel_h, p.stride_h, p.pad_h, 1, p.ceil_mode, c.x),
          conv_out_size("test", c.x[3], p.kernel_w, p.stride_w, p.pad_w, 1, p.ceil_mode, c.x)};
}

std::string pool_label(const PoolCase& c) {
  const Pool2dParams& p = c.p;
  return shape_str(c.x) + " kernel " + std::to_string(p.kernel_h) + "x" +
         std::to_string(p.kernel_w) + " stride " + std::to_string(p.stride_h) + "," +
         std::to_string(p.stride_w) + " pad " + std::to_string(p.pad_h) + "," +
         std::to_string(p.pad_w) + (p.ceil_mode ? " ceil" : "") +
         (p.count_include_pad ? "" : " exclude-pad");
}

}  // namespace engine::testing
