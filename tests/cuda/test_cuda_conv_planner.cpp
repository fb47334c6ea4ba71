// The native conv2d planner's choices (kernels/cuda/conv2d_plan.h) and every variant it can pick,
// each forced in turn and compared with the CPU kernel: split counts of K of any size (forward,
// backward data, backward weight, with the forward's epilogue applied after the fixed-order sum),
// the direct kernel for 1-4 input channels, Winograd F(2x2,3x3) and F(4x4,3x3) on odd sizes,
// paddings 0-2 and partial tiles, and linear on the same GEMM core under every tile and split.
// Shapes are small so that the emulated tier runs them in seconds. Tolerances: the harness's
// conv2d ones (tests/cuda/slots/conv2d.cpp) for the implicit GEMM, the direct kernel and F(2x2);
// F(4x4) gets the CPU's own F(4x4) parity bound, 3e-5 of max|ref| (tests/test_conv_linear.cpp:
// its transform constants up to 8 and 1/24 cost float32 accuracy); linear 1e-5 of max|ref| for
// products of at most 300 terms (tests/cuda/slots/linear.cpp's bound without its sqrt(K) floor).
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "kernels/cuda/conv2d_plan.h"
#include "tests/cuda/backend_harness.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using cuda::ConvAlgo;
using cuda::ConvPass;
using testing::conv_params;
using testing::ConvCase;
using testing::on_cuda;
using testing::poisoned_cuda;
using testing::randn;
using testing::Tol;

const KernelTable& native() { return kernel_table(Backend::Native); }

// Sets an environment variable for a scope (the planner reads it on every call).
class EnvScope {
 public:
  EnvScope(const char* name, const std::string& value) : name_(name) {
    setenv(name, value.c_str(), 1);
  }
  ~EnvScope() { unsetenv(name_); }
  EnvScope(const EnvScope&) = delete;
  EnvScope& operator=(const EnvScope&) = delete;

 private:
  const char* name_;
};

Shape x_shape(const ConvCase& c) { return {c.n, c.cin, c.h, c.w}; }
Shape w_shape(const ConvCase& c) { return {c.cout, c.cin / c.p.groups, c.kh, c.kw}; }

cuda::ConvPlan plan_of(ConvPass pass, const ConvCase& c) {
  return cuda::conv2d_plan(pass, x_shape(c), w_shape(c), c.p);
}

// The forward with bias and activation a (none: plain) against the CPU's, tol being the plain
// convolution's. With an activation, as in the harness: the pre-activation's error carried
// through the 1-Lipschitz activation (atol scaled from max|z| to max|y|), plus the device's
// expf/tanhf rounding (2e-6 relative) for sigmoid and tanh.
void check_forward(const ConvCase& c, std::optional<Activation> a, Tol tol, uint64_t seed) {
  SCOPED_TRACE(c.name + ", forward" + (a ? std::string(", ") + activation_name(*a) : ""));
  Conv2dParams p = c.p;
  p.activation = a;
  const Tensor x = randn(x_shape(c), seed), w = randn(w_shape(c), seed + 1);
  const Tensor b = randn({c.cout}, seed + 2);
  const Tensor z = conv2d(x, w, b, c.p);  // the CPU's, without the activation
  Tensor ref = Tensor::empty(z.shape());
  testing::cpu().conv2d_forward(x, w, b, ref, p);
  if (a) {
    const bool smooth = *a == Activation::Sigmoid || *a == Activation::Tanh;
    tol = Tol{smooth ? 2e-6 : 0.0, tol.atol * testing::max_abs(z) / testing::max_abs(ref)};
  }
  Tensor y = poisoned_cuda(z.shape());
  native().conv2d_forward(on_cuda(x), on_cuda(w), on_cuda(b), y, p);
  EXPECT_MATCHES(y, ref, tol);
}

void check_backward_data(const ConvCase& c, Tol tol, uint64_t seed) {
  SCOPED_TRACE(c.name + ", backward data");
  const Tensor w = randn(w_shape(c), seed + 1);
  const Tensor gy = randn(conv2d(randn(x_shape(c), seed + 2), w, Tensor(), c.p).shape(), seed);
  Tensor ref = Tensor::empty(x_shape(c));
  testing::cpu().conv2d_backward_data(gy, w, ref, c.p);
  Tensor gx = poisoned_cuda(x_shape(c));
  native().conv2d_backward_data(on_cuda(gy), on_cuda(w), gx, c.p);
  EXPECT_MATCHES(gx, ref, tol);
}

constexpr Tol kConvTol{0, 1e-5};       // the harness's native conv2d forward / backward data
constexpr Tol kWinograd4Tol{0, 3e-5};  // the CPU's F(4x4) parity bound

// ---- split-K ----

// The split count a forced count s becomes for a K-deep sum: slices are whole 8-deep K-steps and
// none is empty.
int expected_splits(int64_t k, int64_t s) {
  const int64_t chunk = ((k + s - 1) / s + 7) / 8 * 8;
  return static_cast<int>((k + chunk - 1) / chunk);
}

// K of 108 (forward), 90 (backward data) and 198 (backward weight): counts 1 to 7, slices of
// whole 8-deep K-steps with a shorter last one, and counts reduced so that no slice is empty
// (forward 6 -> 5, backward data 5 -> 4 and 7 -> 6). The grouped case splits each group's K.
TEST(CudaConvPlanner, EverySplitCountMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const std::vector<ConvCase> cases = {
      {"12 -> 10, 9x11", 2, 12, 9, 11, 10, 3, 3, conv_params(1, 1)},
      {"groups 2, 6 -> 10, stride 2", 2, 6, 9, 11, 10, 3, 3, conv_params(2, 1, 1, 2)},
  };
  EnvScope gemm("ENGINE_CUDA_CONV_ALGO", "implicit_gemm");
  uint64_t seed = 5000;
  for (int splits = 1; splits <= 7; ++splits) {
    SCOPED_TRACE("splits " + std::to_string(splits));
    EnvScope forced("ENGINE_CUDA_CONV_SPLITS", std::to_string(splits));
    EXPECT_EQ(plan_of(ConvPass::Forward, cases[0]).splits, expected_splits(108, splits));
    EXPECT_EQ(plan_of(ConvPass::BackwardData, cases[0]).splits, expected_splits(90, splits));
    EXPECT_EQ(plan_of(ConvPass::BackwardWeight, cases[0]).splits, expected_splits(198, splits));
    for (const ConvCase& c : cases) testing::check_conv2d_passes(Backend::Native, c, seed += 30);
  }
}

// Every tile shape of the implicit GEMM, whole and split, in all three passes (the harness's
// tile test in test_cuda_kernel_specific.cpp leaves the algorithm to the planner, which may send
// its 3x3 stride-1 and few-channel cases to Winograd or the direct kernel).
TEST(CudaConvPlanner, ImplicitGemmEveryTileAndSplitMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const ConvCase c{"12 -> 10, 9x11", 2, 12, 9, 11, 10, 3, 3, conv_params(1, 1)};
  EnvScope gemm("ENGINE_CUDA_CONV_ALGO", "implicit_gemm");
  uint64_t seed = 5200;
  for (const char* tile : {"128x128", "128x64", "64x128", "256x32", "32x256", "64x64"}) {
    for (const char* splits : {"1", "3"}) {
      SCOPED_TRACE(std::string("tile ") + tile + ", splits " + splits);
      EnvScope t("ENGINE_CUDA_CONV_TILE", tile), s("ENGINE_CUDA_CONV_SPLITS", splits);
      EXPECT_EQ(plan_of(ConvPass::Forward, c).tile_m, std::stoi(tile));
      testing::check_conv2d_passes(Backend::Native, c, seed += 30);
    }
  }
}

// Under a split the forward's bias and activation are applied after the sum of the slices.
TEST(CudaConvPlanner, SplitForwardAppliesTheEpilogueAfterTheSum) {
  ENGINE_REQUIRE_CUDA();
  const ConvCase c{"12 -> 10, 9x11", 2, 12, 9, 11, 10, 3, 3, conv_params(1, 1)};
  EnvScope gemm("ENGINE_CUDA_CONV_ALGO", "implicit_gemm");
  EnvScope forced("ENGINE_CUDA_CONV_SPLITS", "3");
  uint64_t seed = 5500;
  for (Activation a : {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh})
    check_forward(c, a, kConvTol, seed += 10);
}

// Unforced, the planner splits K where the output tiles alone under-fill the GPU (the forward
// and backward data of a deep batch-8 layer, 128 tiles of 128x128; the first layer's backward
// weight, 32 x 27 outputs) and not where they fill whole waves many times over.
TEST(CudaConvPlanner, SplitsOnlyWhereTheOutputUnderfillsTheGpu) {
  ENGINE_REQUIRE_CUDA();
  EnvScope gemm("ENGINE_CUDA_CONV_ALGO", "implicit_gemm");
  const ConvCase deep{
      "1024 -> 1024 at 16x16, batch 8", 8, 1024, 16, 16, 1024, 3, 3, conv_params(1, 1)};
  const ConvCase wide{
      "64 -> 64 at 112x112, batch 64", 64, 64, 112, 112, 64, 3, 3, conv_params(1, 1)};
  const ConvCase first{
      "3 -> 32 at 150x150, batch 64", 64, 3, 150, 150, 32, 3, 3, conv_params(1, 1)};
  for (ConvPass pass : {ConvPass::Forward, ConvPass::BackwardData})
    EXPECT_GT(plan_of(pass, deep).splits, 1) << cuda::conv_plan_str(plan_of(pass, deep));
  EXPECT_EQ(plan_of(ConvPass::Forward, wide).splits, 1);
  EXPECT_EQ(plan_of(ConvPass::BackwardData, wide).splits, 1);
  EXPECT_GT(plan_of(ConvPass::BackwardWeight, first).splits, 1);
}

// ---- the direct kernel for 1-4 input channels ----

// Every channel count 1-4; output channels short of, equal to and past the kernel's 16-channel
// blocks; 1x1, 3x3, the 7x7 stride-2 stem, dilation; batch 1 and 3; each activation.
TEST(CudaConvPlanner, DirectSmallCinMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const std::vector<ConvCase> cases = {
      {"1 -> 5, 3x3, 7x9", 3, 1, 7, 9, 5, 3, 3, conv_params(1, 1)},
      {"2 -> 16, 1x1, 6x5", 1, 2, 6, 5, 16, 1, 1, conv_params(1, 0)},
      {"3 -> 33, 3x3, 17x15", 2, 3, 17, 15, 33, 3, 3, conv_params(1, 1)},
      {"3 -> 8, 7x7 stride 2 pad 3, 19x21", 2, 3, 19, 21, 8, 7, 7, conv_params(2, 3)},
      {"4 -> 7, 3x3 dilation 2, 11x10", 2, 4, 11, 10, 7, 3, 3, conv_params(1, 2, 2)},
  };
  uint64_t seed = 6000;
  for (const ConvCase& c : cases) {
    EXPECT_EQ(plan_of(ConvPass::Forward, c).algo, ConvAlgo::DirectSmallCin) << c.name;
    check_forward(c, std::nullopt, kConvTol, seed += 10);
    check_forward(c, Activation::ReLU6, kConvTol, seed += 10);
  }
  check_forward(cases[2], Activation::Sigmoid, kConvTol, seed += 10);
  // Forced off, the same layer runs as an implicit GEMM.
  EnvScope gemm("ENGINE_CUDA_CONV_ALGO", "implicit_gemm");
  EXPECT_EQ(plan_of(ConvPass::Forward, cases[2]).algo, ConvAlgo::ImplicitGemm);
}

// ---- Winograd ----

// Odd and even sizes (whole and partial tiles on both axes), paddings 0, 1 and 2 (backward data
// pads by 2 - p), a single image and a batch, channels that fill no GEMM tile, the products split
// or not; forward with bias and an activation, and backward data.
const std::vector<ConvCase>& winograd_cases() {
  static const std::vector<ConvCase> c = {
      {"6 -> 5, 7x9, pad 1", 2, 6, 7, 9, 5, 3, 3, conv_params(1, 1)},
      {"5 -> 7, 8x8, pad 0", 1, 5, 8, 8, 7, 3, 3, conv_params(1, 0)},
      {"9 -> 6, 5x6, pad 2", 2, 9, 5, 6, 6, 3, 3, conv_params(1, 2)},
      {"16 -> 20, 13x11, pad 1", 2, 16, 13, 11, 20, 3, 3, conv_params(1, 1)},
  };
  return c;
}

void check_winograd(const char* algo, ConvAlgo expected, Tol tol, uint64_t seed) {
  EnvScope forced("ENGINE_CUDA_CONV_ALGO", algo);
  for (const char* splits : {"1", "2"}) {
    EnvScope split("ENGINE_CUDA_CONV_SPLITS", splits);
    for (const ConvCase& c : winograd_cases()) {
      SCOPED_TRACE(std::string(algo) + ", splits " + splits);
      EXPECT_EQ(plan_of(ConvPass::Forward, c).algo, expected) << c.name;
      EXPECT_EQ(plan_of(ConvPass::BackwardData, c).algo, expected) << c.name;
      check_forward(c, std::nullopt, tol, seed += 10);
      check_forward(c, Activation::ReLU, tol, seed += 10);
      check_backward_data(c, tol, seed += 10);
    }
  }
}

TEST(CudaConvPlanner, WinogradF2x3MatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  check_winograd("winograd2", ConvAlgo::Winograd2, kConvTol, 7000);
}

// The batched products under every tile shape of the GEMM core (partial tiles: 77 tiles of
// outputs, 20 output channels, 16-deep sums).
TEST(CudaConvPlanner, WinogradEveryTileShapeMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  EnvScope forced("ENGINE_CUDA_CONV_ALGO", "winograd2");
  const ConvCase& c = winograd_cases()[3];
  uint64_t seed = 7500;
  for (const char* tile : {"128x128", "128x64", "64x128", "256x32", "32x256", "64x64"}) {
    SCOPED_TRACE(std::string("tile ") + tile);
    EnvScope t("ENGINE_CUDA_CONV_TILE", tile);
    EXPECT_EQ(plan_of(ConvPass::Forward, c).tile_m, std::stoi(tile));
    check_forward(c, std::nullopt, kConvTol, seed += 10);
    check_backward_data(c, kConvTol, seed += 10);
  }
}

TEST(CudaConvPlanner, WinogradF4x3MatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  check_winograd("winograd4", ConvAlgo::Winograd4, kWinograd4Tol, 8000);
}

// Winograd only takes 3x3 stride-1 dilation-1 ungrouped layers (backward data: padding <= 2);
// forced elsewhere, the planner's own choice stands.
TEST(CudaConvPlanner, WinogradOnlyWhereItApplies) {
  ENGINE_REQUIRE_CUDA();
  {
    EnvScope forced("ENGINE_CUDA_CONV_ALGO", "winograd2");
    for (const ConvCase& c : {ConvCase{"stride 2", 2, 8, 9, 9, 8, 3, 3, conv_params(2, 1)},
                              ConvCase{"dilation 2", 2, 8, 9, 9, 8, 3, 3, conv_params(1, 2, 2)},
                              ConvCase{"groups 2", 2, 8, 9, 9, 8, 3, 3, conv_params(1, 1, 1, 2)},
                              ConvCase{"5x5", 2, 8, 9, 9, 8, 5, 5, conv_params(1, 2)}})
      EXPECT_EQ(plan_of(ConvPass::Forward, c).algo, ConvAlgo::ImplicitGemm) << c.name;
    const ConvCase pad3{"pad 3", 2, 8, 9, 9, 8, 3, 3, conv_params(1, 3)};
    EXPECT_EQ(plan_of(ConvPass::Forward, pad3).algo, ConvAlgo::Winograd2);
    EXPECT_EQ(plan_of(ConvPass::BackwardData, pad3).algo, ConvAlgo::ImplicitGemm);
    EXPECT_EQ(plan_of(ConvPass::BackwardWeight, pad3).algo, ConvAlgo::ImplicitGemm);
    check_forward(pad3, std::nullopt, kConvTol, 7900);  // tiles of padding only at the edges
    check_backward_data(pad3, kConvTol, 7910);
  }
}

// Unforced, the model picks F(2x2,3x3) for the forward and backward data of a wide 3x3 layer with
// several waves of work (the study's 256 -> 256 at 32x32, batch 64: 2.25x fewer multiplies
// against ~1 GB of transform traffic), the implicit GEMM for its backward weight, and never
// F(4x4,3x3).
TEST(CudaConvPlanner, WinogradChosenForAWideLayer) {
  ENGINE_REQUIRE_CUDA();
  const ConvCase wide{
      "256 -> 256 at 32x32, batch 64", 64, 256, 32, 32, 256, 3, 3, conv_params(1, 1)};
  EXPECT_EQ(plan_of(ConvPass::Forward, wide).algo, ConvAlgo::Winograd2);
  EXPECT_EQ(plan_of(ConvPass::BackwardData, wide).algo, ConvAlgo::Winograd2);
  EXPECT_EQ(plan_of(ConvPass::BackwardWeight, wide).algo, ConvAlgo::ImplicitGemm);
}

// ---- linear on the GEMM core ----

// Each tile shape with and without a split, on products with partial tiles in every dimension.
TEST(CudaLinearGemm, EveryTileAndSplitMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const int64_t m = 37, k = 300, n = 70;  // y[m, n] = x[m, k] w[n, k]^T + b
  const Tensor x = randn({m, k}, 9001), w = randn({n, k}, 9002), b = randn({n}, 9003);
  const Tensor gy = randn({m, n}, 9004);
  Tensor y_ref = Tensor::empty({m, n}), gx_ref = Tensor::empty({m, k});
  Tensor gw_ref = Tensor::empty({n, k}), gb_ref = Tensor::empty({n});
  testing::cpu().linear_forward(x, w, b, y_ref);
  testing::cpu().linear_backward_data(gy, w, gx_ref);
  testing::cpu().linear_backward_weight(gy, x, gw_ref, gb_ref);
  constexpr Tol kTol{0, 1e-5};
  for (const char* tile : {"128x128", "128x64", "64x128", "256x32", "32x256", "64x64"}) {
    for (const char* splits : {"1", "3"}) {
      SCOPED_TRACE(std::string("tile ") + tile + ", splits " + splits);
      EnvScope t("ENGINE_CUDA_CONV_TILE", tile), s("ENGINE_CUDA_CONV_SPLITS", splits);
      Tensor y = poisoned_cuda({m, n}), gx = poisoned_cuda({m, k});
      Tensor gw = poisoned_cuda({n, k}), gb = poisoned_cuda(n);
      native().linear_forward(on_cuda(x), on_cuda(w), on_cuda(b), y);
      native().linear_backward_data(on_cuda(gy), on_cuda(w), gx);
      native().linear_backward_weight(on_cuda(gy), on_cuda(x), gw, gb);
      EXPECT_MATCHES(y, y_ref, kTol);
      EXPECT_MATCHES(gx, gx_ref, kTol);
      EXPECT_MATCHES(gw, gw_ref, kTol);
      EXPECT_MATCHES(gb, gb_ref, testing::kExact);
    }
  }
}

}  // namespace
}  // namespace engine
