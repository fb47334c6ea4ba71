// What the cross-backend harness (test_cuda_backends.cpp) does not cover because it belongs to one
// native kernel: conv2d's tile shapes (forced one by one), max pooling's choice among tied maxima
// and its NaN and -inf rules (values, indices and gradients exact, NaN matching NaN), and batch
// norm's fixed reduction order (bit-identical reruns). Tolerances are the harness's.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/cuda/backend_harness.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::conv_params;
using testing::ConvCase;
using testing::fast_randn;
using testing::on_cuda;
using testing::poisoned_cuda;
using testing::pool_cases;
using testing::PoolCase;

const KernelTable& cpu() { return kernel_table(Backend::Cpu); }
const KernelTable& native() { return kernel_table(Backend::Native); }

// The tile shape is picked per problem size, so the harness's cases see only some of the six;
// ENGINE_CUDA_CONV_TILE forces each in turn on cases with partial tiles in every dimension.
TEST(CudaConv2d, EveryTileShapeMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const std::vector<ConvCase> some = {
      {"groups 2, 6 -> 10", 2, 6, 9, 11, 10, 3, 3, conv_params(1, 1, 1, 2)},
      {"40 -> 72 stride 2, 19x17", 3, 40, 19, 17, 72, 3, 3, conv_params(2, 1)},
      {"3 -> 32 at 64x64 (first layer)", 2, 3, 64, 64, 32, 3, 3, conv_params(1, 1)},
  };
  uint64_t seed = 3000;
  // The implicit GEMM in every pass: the planner would give the first layer's forward to the
  // direct small-channel kernel (tested in test_cuda_conv_planner.cpp).
  setenv("ENGINE_CUDA_CONV_ALGO", "implicit_gemm", 1);
  for (const char* tile : {"128x128", "128x64", "64x128", "256x32", "32x256", "64x64"}) {
    SCOPED_TRACE(std::string("tile ") + tile);
    setenv("ENGINE_CUDA_CONV_TILE", tile, 1);
    for (const ConvCase& c : some) testing::check_conv2d_passes(Backend::Native, c, seed += 30);
  }
  unsetenv("ENGINE_CUDA_CONV_TILE");
  unsetenv("ENGINE_CUDA_CONV_ALGO");
}

// ---- max pooling: ties, NaN and -inf, on the harness's pooling cases ----

// Element-wise identical, NaN matching NaN; reports the first difference.
void expect_identical(const Tensor& ours, const Tensor& ref) {
  ASSERT_EQ(ours.shape(), ref.shape());
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]));
    ASSERT_TRUE(same) << "element " << i << ": ours " << a[i] << ", reference " << b[i];
  }
}

// Forward (values and indices) and backward (from the reference indices) of max pooling on x.
void check_max_pool(const Tensor& x, const PoolCase& c, uint64_t seed) {
  SCOPED_TRACE(testing::pool_label(c));
  const Shape out = testing::pool_out_shape(c);
  Tensor y_ref = Tensor::empty(out), i_ref = Tensor::empty(out, DType::I64);
  cpu().max_pool2d_forward(x, y_ref, i_ref, c.p);
  Tensor y = poisoned_cuda(out), idx = testing::poisoned_cuda_i64(out);
  native().max_pool2d_forward(on_cuda(x), y, idx, c.p);
  expect_identical(y, y_ref);
  EXPECT_EQ(idx.to_vector_i64(), i_ref.to_vector_i64());

  const Tensor gy = fast_randn(out, seed + 1);
  Tensor gx_ref = Tensor::empty(c.x);
  cpu().max_pool2d_backward(gy, i_ref, gx_ref, c.p);
  Tensor gx = poisoned_cuda(c.x);
  native().max_pool2d_backward(on_cuda(gy), on_cuda(i_ref), gx, c.p);
  expect_identical(gx, gx_ref);
}

// Integers in [-4, 4]: most windows hold their maximum more than once, and the first maximum in
// row-major order must win.
TEST(CudaPool, MaxPoolTiesPickTheFirstMaximum) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 200;
  for (const PoolCase& c : pool_cases()) {
    std::vector<float> v = fast_randn(c.x, seed).to_vector();
    for (float& e : v) e = std::max(-4.f, std::min(4.f, std::round(e * 1.5f)));
    check_max_pool(Tensor::from_vector(c.x, v), c, seed);
    seed += 10;
  }
}

// NaN wins its window (the last NaN's index is kept); a window of -inf keeps its first element.
TEST(CudaPool, MaxPoolNanAndMinusInfinity) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 300;
  for (const PoolCase& c : pool_cases()) {
    std::vector<float> v = fast_randn(c.x, seed).to_vector();
    const size_t plane = static_cast<size_t>(c.x[2] * c.x[3]);
    for (size_t i = 0; i < v.size(); ++i) {
      if (i < plane) {
        v[i] = -std::numeric_limits<float>::infinity();
      } else if (i % 7 == 3) {
        v[i] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    check_max_pool(Tensor::from_vector(c.x, v), c, seed);
    seed += 10;
  }
}

// ---- batch norm ----

// The per-channel reductions fold their partials in a fixed order: two runs agree bit for bit.
TEST(CudaBatchNorm, TrainingStatisticsAreDeterministic) {
  ENGINE_REQUIRE_CUDA();
  const Shape shape = {64, 32, 56, 56};
  const Tensor x = on_cuda(fast_randn(shape, 7, 3.f, 2.f)), gy = on_cuda(fast_randn(shape, 8));
  std::vector<std::vector<float>> runs[2];
  for (auto& run : runs) {
    Tensor y = poisoned_cuda(shape), mean = poisoned_cuda({32}), invstd = poisoned_cuda({32});
    Tensor none;
    native().batch_norm_forward_train(x, Tensor(), Tensor(), y, mean, invstd, none, none, 0.1f,
                                      1e-5f);
    Tensor gx = poisoned_cuda(shape), gw = poisoned_cuda({32}), gb = poisoned_cuda({32});
    native().batch_norm_backward(gy, x, Tensor(), mean, invstd, true, gx, gw, gb);
    for (const Tensor* t : {&y, &mean, &invstd, &gx, &gw, &gb}) run.push_back(t->to_vector());
  }
  for (size_t i = 0; i < runs[0].size(); ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    ASSERT_EQ(runs[0][i].size(), runs[1][i].size());
    EXPECT_EQ(std::memcmp(runs[0][i].data(), runs[1][i].data(), runs[0][i].size() * 4), 0);
  }
}

}  // namespace
}  // namespace engine
