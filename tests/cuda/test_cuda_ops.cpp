// The ops on CUDA tensors, through engine/ops.h and autograd rather than the kernel table: CUDA
// tensors dispatch to the native backend, backward runs there too, and the results match the same
// ops on the CPU. The kernels themselves are compared slot by slot in test_cuda_backends.cpp, with
// the tolerances stated there; these use the same ones.
#include <cstring>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "engine/random.h"
#include "tests/cuda/backend_harness.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::fast_randn;
using testing::Tol;

TEST(CudaOps, AddDispatchesToNative) {
  ENGINE_REQUIRE_CUDA();
  BackendScope native(Backend::Native);
  for (int64_t n : testing::test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Tensor a = fast_randn({n}, 1), b = fast_randn({n}, 2, 0.f, 3.f);
    const Tensor y = add(a.to(Device::cuda()), b.to(Device::cuda()));
    EXPECT_TRUE(y.device().is_cuda());
    EXPECT_MATCHES(y, add(a, b), (Tol{1e-6, 0}));
  }
}

// Backward fills the gradients of x, w and b (gw and gb from one backward-weight call).
TEST(CudaOps, Conv2dAndAutogradMatchCpu) {
  ENGINE_REQUIRE_CUDA();
  BackendScope native(Backend::Native);
  const testing::ConvCase c{"op", 2, 6, 11, 9, 10, 3, 3, testing::conv_params(2, 1, 1, 2)};
  const Tensor x = fast_randn({c.n, c.cin, c.h, c.w}, 5000);
  const Tensor w = fast_randn({c.cout, c.cin / c.p.groups, c.kh, c.kw}, 5001);
  const Tensor b = fast_randn({c.cout}, 5002);
  struct Result {
    Tensor y, gx, gw, gb;
  };
  auto run = [&](Device d, const Tensor& gy) {
    Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d);
    xd.set_requires_grad(true), wd.set_requires_grad(true), bd.set_requires_grad(true);
    Tensor y = conv2d(xd, wd, bd, c.p);
    y.backward(gy.to(d));
    return Result{y, xd.grad(), wd.grad(), bd.grad()};
  };
  const Tensor gy = fast_randn({c.n, c.cout, 6, 5}, 5003);
  const Result ref = run(Device::cpu(), gy), ours = run(Device::cuda(), gy);
  EXPECT_TRUE(ours.y.device().is_cuda());
  EXPECT_MATCHES(ours.y, ref.y, (Tol{0, 1e-5}));
  EXPECT_MATCHES(ours.gx, ref.gx, (Tol{0, 1e-5}));
  EXPECT_MATCHES(ours.gw, ref.gw, (Tol{0, 1e-4}));
  EXPECT_MATCHES(ours.gb, ref.gb, (Tol{0, 1e-5}));
}

// Forward in training mode and backward, with the running statistics updated on the device.
TEST(CudaOps, BatchNormMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  BackendScope native(Backend::Native);
  const Shape shape = {4, 6, 9, 8};
  const Tensor x = fast_randn(shape, 11, 3.f, 2.f), gy = fast_randn(shape, 12);
  const Tensor w = fast_randn({6}, 13, 1.f, 0.5f), b = fast_randn({6}, 14);
  Tensor outputs[2][6];  // [cpu, cuda][y, gx, gw, gb, running mean, running var]
  for (int dev = 0; dev < 2; ++dev) {
    const Device d = dev ? Device::cuda() : Device::cpu();
    Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d);
    xd.set_requires_grad(true), wd.set_requires_grad(true), bd.set_requires_grad(true);
    Tensor rm = Tensor::zeros({6}, DType::F32, d), rv = Tensor::full({6}, 1.f, d);
    Tensor y = batch_norm(xd, wd, bd, rm, rv, /*training=*/true, 0.1f, 1e-5f);
    EXPECT_EQ(y.device().is_cuda(), dev == 1);
    y.backward(gy.to(d));
    Tensor* o = outputs[dev];
    o[0] = y, o[1] = xd.grad(), o[2] = wd.grad(), o[3] = bd.grad(), o[4] = rm, o[5] = rv;
  }
  for (int i = 0; i < 6; ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    EXPECT_MATCHES(outputs[1][i], outputs[0][i], (Tol{0, 1e-6}));
  }
}

// One kernel serves forward and backward: with gy = x, backward's gx equals the forward's y bit
// for bit (the mask regenerated from the same seed and offset), and both equal the CPU's.
TEST(CudaOps, DropoutBackwardRegeneratesForwardMask) {
  ENGINE_REQUIRE_CUDA();
  BackendScope native(Backend::Native);
  const int64_t n = 1000003;
  const Tensor x = fast_randn({n}, 3);
  std::vector<float> y[2], gx[2];
  for (int dev = 0; dev < 2; ++dev) {
    Generator gen(77);
    gen.reserve(13);
    Tensor xd = x.to(dev ? Device::cuda() : Device::cpu());
    xd.set_requires_grad(true);
    Tensor out = dropout(xd, 0.5f, /*training=*/true, gen);
    out.backward(xd.detach());
    y[dev] = out.to_vector(), gx[dev] = xd.grad().to_vector();
  }
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  ASSERT_EQ(y[1].size(), static_cast<size_t>(n));
  ASSERT_EQ(gx[1].size(), static_cast<size_t>(n));
  EXPECT_EQ(std::memcmp(gx[1].data(), y[1].data(), bytes), 0) << "CUDA: backward's mask differs";
  EXPECT_EQ(std::memcmp(y[1].data(), y[0].data(), bytes), 0) << "CUDA forward differs from CPU";
  EXPECT_EQ(std::memcmp(gx[1].data(), gx[0].data(), bytes), 0) << "CUDA backward differs from CPU";
}

}  // namespace
}  // namespace engine
