// Native CUDA element-wise kernels against the CPU kernels on the same random inputs.
// Tolerances (max|ours - ref| / max|ref|): fill 0 (exact); add, add_inplace, scale_inplace 1e-6
// (one or two roundings; nvcc may contract y + a*x into an FMA where g++ does not); sum_squares
// 1e-9 (both sum exact squares in double, only the order of additions differs: ~n * 1e-16).
#include "engine/ops.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::poisoned_cuda;
using testing::random_cpu;
using testing::test_sizes;

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

TEST(CudaElementwise, FillMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const float v = 0.37f + static_cast<float>(n % 7);
    Tensor y = poisoned_cuda(n);
    gpu_k().fill(y, v);
    Tensor ref = Tensor::empty({n});
    cpu_k().fill(ref, v);
    EXPECT_CLOSE(y, ref, 0.0);
  }
}

TEST(CudaElementwise, AddMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Tensor a = random_cpu(n, 1), b = random_cpu(n, 2, 3.f);
    Tensor ref = Tensor::empty({n});
    cpu_k().add(a, b, ref);
    Tensor ad = a.to(Device::cuda()), bd = b.to(Device::cuda());
    Tensor y = poisoned_cuda(n);
    gpu_k().add(ad, bd, y);
    EXPECT_CLOSE(y, ref, 1e-6);
    // The same through the op, which dispatches CUDA tensors to the native backend.
    Tensor y_op = add(ad, bd);
    EXPECT_TRUE(y_op.device().is_cuda());
    EXPECT_CLOSE(y_op, ref, 1e-6);
  }
}

TEST(CudaElementwise, AddInplaceMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Tensor y0 = random_cpu(n, 3), x = random_cpu(n, 4, 2.f);
    const float alpha = -0.75f;
    Tensor yd = y0.to(Device::cuda());
    gpu_k().add_inplace(yd, x.to(Device::cuda()), alpha);
    Tensor ref = y0.clone();
    cpu_k().add_inplace(ref, x, alpha);
    EXPECT_CLOSE(yd, ref, 1e-6);
  }
}

TEST(CudaElementwise, ScaleInplaceMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Tensor y0 = random_cpu(n, 5);
    const float s = 1.7f;
    Tensor yd = y0.to(Device::cuda());
    gpu_k().scale_inplace(yd, s);
    Tensor ref = y0.clone();
    cpu_k().scale_inplace(ref, s);
    EXPECT_CLOSE(yd, ref, 1e-6);
  }
}

TEST(CudaElementwise, SumSquaresMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : test_sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Tensor x = random_cpu(n, 6, 2.f);
    const double ref = cpu_k().sum_squares(x);
    const double ours = gpu_k().sum_squares(x.to(Device::cuda()));
    ASSERT_GT(ref, 0.0);
    EXPECT_LE(std::abs(ours - ref) / ref, 1e-9) << "ours " << ours << ", cpu " << ref;
  }
}

}  // namespace
}  // namespace engine
