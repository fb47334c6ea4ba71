// The cross-backend harness's cases for the activations slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// activations: relu, relu6 exact (forward and backward: a select and a copy). sigmoid and tanh
// forward {2e-6, 0} native (CUDA expf/tanhf are within 2 ulp, the CPU's Cephes polynomials
// within 1.5e-7, relative to the element), {9e-6, 1e-6} cudnn (cuDNN's own exp/tanh). Backward
// {5e-7, 5e-7} native, {1e-6, 1e-6} cudnn: the same y fed to both, a few roundings, and tanh's
// 1 - y*y may be an FMA on one side only (an absolute error of ~ulp(1) * |gy|).
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

constexpr Activation kActivations[] = {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid,
                                       Activation::Tanh};
bool piecewise_linear(Activation a) { return a == Activation::ReLU || a == Activation::ReLU6; }

// Inputs with stddev 4, so relu6 clamps at both ends and sigmoid/tanh saturate.
ENGINE_SLOT_CHECK(activation_forward) {
  for (Activation a : kActivations) {
    const Tol tol = piecewise_linear(a) ? kExact : cudnn(b) ? Tol{9e-6, 1e-6} : Tol{2e-6, 0};
    for (int64_t n : sizes()) {
      SCOPED_TRACE(std::string(activation_name(a)) + ", n = " + std::to_string(n));
      const Tensor x = randn({n}, 10 + static_cast<uint64_t>(a) * 131 + n, 0.f, 4.f);
      Tensor ref = Tensor::empty({n});
      cpu().activation_forward(a, x, ref);
      Tensor y = poisoned({n});
      kernel_table(b).activation_forward(a, on_cuda(x), y);
      EXPECT_MATCHES(y, ref, tol);
    }
  }
}

// y is a real forward output (the CPU's), so relu's zeros and relu6's 6s are present: the kinks
// where passing y in place of x must still give PyTorch's zero gradient.
ENGINE_SLOT_CHECK(activation_backward) {
  for (Activation a : kActivations) {
    const Tol tol = piecewise_linear(a) ? kExact : cudnn(b) ? Tol{1e-6, 1e-6} : Tol{5e-7, 5e-7};
    for (int64_t n : sizes()) {
      SCOPED_TRACE(std::string(activation_name(a)) + ", n = " + std::to_string(n));
      const Tensor x = randn({n}, 20 + static_cast<uint64_t>(a) * 131 + n, 0.f, 4.f);
      Tensor y = Tensor::empty({n});
      cpu().activation_forward(a, x, y);
      const Tensor gy = randn({n}, 30 + static_cast<uint64_t>(a) * 131 + n);
      Tensor ref = Tensor::empty({n});
      cpu().activation_backward(a, y, gy, ref);
      Tensor gx = poisoned({n});
      kernel_table(b).activation_backward(a, on_cuda(y), on_cuda(gy), gx);
      EXPECT_MATCHES(gx, ref, tol);
    }
  }
}

}  // namespace

}  // namespace engine::testing
