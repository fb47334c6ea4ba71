// Native CUDA activations against the CPU kernels on the same random inputs (stddev 4, so relu6
// clamps at both ends and sigmoid/tanh saturate). Tolerances (max|ours - ref| / max|ref|): relu and
// relu6 forward 0 (exact); sigmoid and tanh forward 2e-6 (CUDA expf/tanhf, 2 ulp, against the CPU's
// Cephes polynomials, 1.5e-7); every backward 1e-6 (same y fed to both, a few roundings).
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::poisoned_cuda;
using testing::random_cpu;
using testing::test_sizes;

constexpr Activation kAll[] = {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid,
                               Activation::Tanh};

double forward_tol(Activation a) {
  return a == Activation::ReLU || a == Activation::ReLU6 ? 0.0 : 2e-6;
}

TEST(CudaActivation, ForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (Activation a : kAll) {
    for (int64_t n : test_sizes()) {
      SCOPED_TRACE(std::string(activation_name(a)) + ", n = " + std::to_string(n));
      Tensor x = random_cpu(n, 10 + static_cast<uint64_t>(a), 4.f);
      Tensor ref = Tensor::empty({n});
      kernel_table(Backend::Cpu).activation_forward(a, x, ref);
      Tensor y = poisoned_cuda(n);
      kernel_table(Backend::Native).activation_forward(a, x.to(Device::cuda()), y);
      EXPECT_CLOSE(y, ref, forward_tol(a));
    }
  }
}

TEST(CudaActivation, BackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (Activation a : kAll) {
    for (int64_t n : test_sizes()) {
      SCOPED_TRACE(std::string(activation_name(a)) + ", n = " + std::to_string(n));
      // y is a real forward output (the CPU's), so relu's zeros and relu6's 6s are present.
      Tensor x = random_cpu(n, 20 + static_cast<uint64_t>(a), 4.f);
      Tensor y = Tensor::empty({n});
      kernel_table(Backend::Cpu).activation_forward(a, x, y);
      Tensor gy = random_cpu(n, 30 + static_cast<uint64_t>(a));
      Tensor ref = Tensor::empty({n});
      kernel_table(Backend::Cpu).activation_backward(a, y, gy, ref);
      Tensor gx = poisoned_cuda(n);
      kernel_table(Backend::Native)
          .activation_backward(a, y.to(Device::cuda()), gy.to(Device::cuda()), gx);
      EXPECT_CLOSE(gx, ref, 1e-6);
    }
  }
}

}  // namespace
}  // namespace engine
