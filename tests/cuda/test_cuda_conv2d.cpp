// Native CUDA conv2d (implicit GEMM, and the direct kernels for depthwise convs) against the CPU
// kernels (im2col + SGEMM or Winograd F(2x2, 3x3), whichever the CPU picks) on the same N(0, 1)
// inputs, outputs poisoned with NaN. Tolerances, as max|ours - ref| / max|ref|:
//   forward and backward data: 1e-5. Each output is a dot product of K = Cin/G*kH*kW (or
//     Cout/G*kH*kW) terms, at most 4608 here, summed in another order than the CPU's (which may
//     also go through Winograd's transforms). Rounding errors of random-signed terms grow like
//     sqrt(K) * 2^-24 * sqrt(sum of squares), a few 1e-7 of max|ref| (the largest seen: 2.6e-6,
//     256 -> 512 against the CPU's Winograd); 1e-5 leaves room for that.
//   backward weight: 1e-4. Each element sums N*OH*OW products (up to 50176 here) in slices and a
//     tree on our side, in per-image GEMMs on the CPU's: the same sqrt(K) growth over 20x more
//     terms.
//   bias gradient: 1e-5 (sums of N*OH*OW values, no products).
#include <cstdlib>
#include <string>

#include "engine/ops.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::poisoned_cuda;
using testing::random_cpu;

constexpr double kTolForward = 1e-5, kTolData = 1e-5, kTolWeight = 1e-4, kTolBias = 1e-5;

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

struct Case {
  std::string name;
  int64_t n, cin, h, w, cout, kh, kw;
  Conv2dParams p;
};

Conv2dParams params(int64_t stride, int64_t pad, int64_t dilation = 1, int64_t groups = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

Conv2dParams asymmetric_params() {  // 3x5 kernel, stride (2, 1), padding (1, 2), 3 groups
  Conv2dParams p = params(1, 1, 1, 3);
  p.stride_h = 2, p.pad_w = 2;
  return p;
}

// Odd sizes, every parameter, channel counts that are no multiple of any tile, and the study's
// first layer and a deep layer (K = 2304, several K-steps and tiles in every dimension).
const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"batch 1, 7x9, 3x3 pad 1", 1, 3, 7, 9, 4, 3, 3, params(1, 1)},
      {"batch 3, 13x13, stride 2", 3, 5, 13, 13, 7, 3, 3, params(2, 1)},
      {"9x7, pad 0", 2, 4, 9, 7, 6, 3, 3, params(1, 0)},
      {"pad 3", 1, 3, 8, 8, 5, 3, 3, params(1, 3)},
      {"dilation 2", 2, 4, 11, 10, 6, 3, 3, params(1, 2, 2)},
      {"1x1", 3, 16, 7, 7, 24, 1, 1, params(1, 0)},
      {"1x1 stride 2", 2, 16, 9, 9, 8, 1, 1, params(2, 0)},
      {"7x7 stride 2 pad 3 (ResNet stem)", 2, 3, 32, 30, 8, 7, 7, params(2, 3)},
      {"groups 2, 6 -> 10", 2, 6, 9, 11, 10, 3, 3, params(1, 1, 1, 2)},
      {"groups 3, 3x5 kernel, stride (2, 1)", 2, 9, 10, 12, 6, 3, 5, asymmetric_params()},
      {"64 -> 128 stride 2, 15x15", 2, 64, 15, 15, 128, 3, 3, params(2, 1)},
      {"depthwise 3x3, C 17", 3, 17, 13, 13, 17, 3, 3, params(1, 1, 1, 17)},
      {"depthwise 3x3 stride 2, C 32", 2, 32, 14, 14, 32, 3, 3, params(2, 1, 1, 32)},
      {"depthwise 5x5, C 17, batch 1", 1, 17, 12, 11, 17, 5, 5, params(1, 2, 1, 17)},
      {"depthwise 3x3 stride 2 dilation 2", 2, 8, 15, 9, 8, 3, 3, params(2, 2, 2, 8)},
      {"channel multiplier 2 (not depthwise)", 2, 4, 9, 9, 8, 3, 3, params(1, 1, 1, 4)},
      {"3 -> 32 at 64x64 (first layer)", 2, 3, 64, 64, 32, 3, 3, params(1, 1)},
      {"256 -> 512 at 16x16", 2, 256, 16, 16, 512, 3, 3, params(1, 1)},
  };
  return c;
}

Shape x_shape(const Case& c) { return {c.n, c.cin, c.h, c.w}; }
Shape w_shape(const Case& c) { return {c.cout, c.cin / c.p.groups, c.kh, c.kw}; }
Shape y_shape(const Case& c) {
  const int64_t oh = (c.h + 2 * c.p.pad_h - c.p.dilation_h * (c.kh - 1) - 1) / c.p.stride_h + 1;
  const int64_t ow = (c.w + 2 * c.p.pad_w - c.p.dilation_w * (c.kw - 1) - 1) / c.p.stride_w + 1;
  return {c.n, c.cout, oh, ow};
}

Tensor random(const Shape& s, uint64_t seed) { return random_cpu(shape_numel(s), seed).reshape(s); }
Tensor poisoned(const Shape& s) { return poisoned_cuda(shape_numel(s)).reshape(s); }
Tensor on_gpu(const Tensor& t) { return t.defined() ? t.to(Device::cuda()) : Tensor(); }

void check_forward(const Case& c, bool bias, uint64_t seed) {
  SCOPED_TRACE(c.name + (bias ? ", bias" : ", no bias"));
  const Tensor x = random(x_shape(c), seed), w = random(w_shape(c), seed + 1);
  const Tensor b = bias ? random({c.cout}, seed + 2) : Tensor();
  Tensor ref = Tensor::empty(y_shape(c));
  cpu_k().conv2d_forward(x, w, b, ref, c.p);
  Tensor y = poisoned(y_shape(c));
  gpu_k().conv2d_forward(on_gpu(x), on_gpu(w), on_gpu(b), y, c.p);
  EXPECT_CLOSE(y, ref, kTolForward);
}

void check_backward_data(const Case& c, uint64_t seed) {
  SCOPED_TRACE(c.name);
  const Tensor gy = random(y_shape(c), seed), w = random(w_shape(c), seed + 1);
  Tensor ref = Tensor::empty(x_shape(c));
  cpu_k().conv2d_backward_data(gy, w, ref, c.p);
  Tensor gx = poisoned(x_shape(c));
  gpu_k().conv2d_backward_data(on_gpu(gy), on_gpu(w), gx, c.p);
  EXPECT_CLOSE(gx, ref, kTolData);
}

// want_w / want_b: which of gw and gb are asked for (the other stays undefined).
void check_backward_weight(const Case& c, bool want_w, bool want_b, uint64_t seed) {
  SCOPED_TRACE(c.name + (want_w ? ", gw" : "") + (want_b ? ", gb" : ""));
  const Tensor gy = random(y_shape(c), seed), x = random(x_shape(c), seed + 1);
  Tensor gw_ref = want_w ? Tensor::empty(w_shape(c)) : Tensor();
  Tensor gb_ref = want_b ? Tensor::empty({c.cout}) : Tensor();
  cpu_k().conv2d_backward_weight(gy, x, gw_ref, gb_ref, c.p);
  Tensor gw = want_w ? poisoned(w_shape(c)) : Tensor();
  Tensor gb = want_b ? poisoned({c.cout}) : Tensor();
  gpu_k().conv2d_backward_weight(on_gpu(gy), on_gpu(x), gw, gb, c.p);
  if (want_w) {
    EXPECT_CLOSE(gw, gw_ref, kTolWeight);
  }
  if (want_b) {
    EXPECT_CLOSE(gb, gb_ref, kTolBias);
  }
}

void check_all_passes(const Case& c, uint64_t seed) {
  check_forward(c, true, seed);
  check_backward_data(c, seed + 10);
  check_backward_weight(c, true, true, seed + 20);
}

TEST(CudaConv2d, ForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    check_forward(c, false, seed += 10);
    check_forward(c, true, seed += 10);
  }
}

TEST(CudaConv2d, BackwardDataMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 1000;
  for (const Case& c : cases()) check_backward_data(c, seed += 10);
}

TEST(CudaConv2d, BackwardWeightMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 2000;
  for (const Case& c : cases()) {
    check_backward_weight(c, true, true, seed += 10);
    check_backward_weight(c, true, false, seed += 10);
    check_backward_weight(c, false, true, seed += 10);
  }
}

// The tile shape is picked per problem size, so the small cases above see only some of the six;
// ENGINE_CUDA_CONV_TILE forces each in turn on cases with partial tiles in every dimension.
TEST(CudaConv2d, EveryTileShapeMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const std::vector<Case> some = {
      {"groups 2, 6 -> 10", 2, 6, 9, 11, 10, 3, 3, params(1, 1, 1, 2)},
      {"40 -> 72 stride 2, 19x17", 3, 40, 19, 17, 72, 3, 3, params(2, 1)},
      {"3 -> 32 at 64x64 (first layer)", 2, 3, 64, 64, 32, 3, 3, params(1, 1)},
  };
  uint64_t seed = 3000;
  for (const char* tile : {"128x128", "128x64", "64x128", "256x32", "32x256", "64x64"}) {
    SCOPED_TRACE(std::string("tile ") + tile);
    setenv("ENGINE_CUDA_CONV_TILE", tile, 1);
    for (const Case& c : some) check_all_passes(c, seed += 30);
  }
  unsetenv("ENGINE_CUDA_CONV_TILE");
}

// More work than one grid covers, so the grid-stride loops of the depthwise kernels go round:
// 4 x 32 planes of 112x112 (1.6M outputs, planes strided over grid.y), and 8 x 2600 planes of
// 7x7 taken five to a block (4160 block rows of planes for 4096 blocks). The NaN poison shows any
// element left unwritten. And a GEMM with thousands of tiles.
TEST(CudaConv2d, LargeTensorsAreFullyWritten) {
  ENGINE_REQUIRE_CUDA();
  const std::vector<Case> large = {
      {"depthwise 3x3, 4 x 32 x 112x112", 4, 32, 112, 112, 32, 3, 3, params(1, 1, 1, 32)},
      {"depthwise 3x3, 8 x 2600 x 7x7", 8, 2600, 7, 7, 2600, 3, 3, params(1, 1, 1, 2600)},
      {"16 -> 24 at 96x96, batch 4", 4, 16, 96, 96, 24, 3, 3, params(1, 1)},
  };
  uint64_t seed = 4000;
  for (const Case& c : large) check_all_passes(c, seed += 30);
}

// Through the op and autograd: CUDA tensors dispatch to the native backend, and backward fills
// the gradients of x, w and b (gw and gb from one backward-weight call).
TEST(CudaConv2d, OpAndAutogradMatchCpu) {
  ENGINE_REQUIRE_CUDA();
  const Case c{"op", 2, 6, 11, 9, 10, 3, 3, params(2, 1, 1, 2)};
  const Tensor x = random(x_shape(c), 5000), w = random(w_shape(c), 5001);
  const Tensor b = random({c.cout}, 5002), gy = random(y_shape(c), 5003);
  struct Result {
    Tensor y, gx, gw, gb;
  };
  auto run = [&](Device d) {
    Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d);
    xd.set_requires_grad(true), wd.set_requires_grad(true), bd.set_requires_grad(true);
    Tensor y = conv2d(xd, wd, bd, c.p);
    y.backward(gy.to(d));
    return Result{y, xd.grad(), wd.grad(), bd.grad()};
  };
  const Result ref = run(Device::cpu()), ours = run(Device::cuda());
  EXPECT_TRUE(ours.y.device().is_cuda());
  EXPECT_CLOSE(ours.y, ref.y, kTolForward);
  EXPECT_CLOSE(ours.gx, ref.gx, kTolData);
  EXPECT_CLOSE(ours.gw, ref.gw, kTolWeight);
  EXPECT_CLOSE(ours.gb, ref.gb, kTolBias);
}

}  // namespace
}  // namespace engine
