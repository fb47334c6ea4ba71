// The cross-backend harness's cases for the element-wise slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// element-wise: fill exact; add and scale_inplace {1e-6, 0} (one rounding of the element's own
// value); add_inplace {5e-7, 5e-7} (y + alpha*x may be an FMA on one side: ~ulp(alpha*x)
// absolute); sum_squares 1e-9 relative (both sum exact squares in double; only the order of
// additions differs: ~n * 1e-16).
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

ENGINE_SLOT_CHECK(fill) {
  for (int64_t n : sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const float v = 0.37f + static_cast<float>(n % 7);
    Tensor ref = Tensor::empty({n});
    cpu().fill(ref, v);
    Tensor y = poisoned({n});
    kernel_table(b).fill(y, v);
    EXPECT_MATCHES(y, ref, kExact);
  }
}

ENGINE_SLOT_CHECK(add) {
  for (int64_t n : sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Tensor a = randn({n}, 1 + n), c = randn({n}, 2 + n, 0.f, 3.f);
    Tensor ref = Tensor::empty({n});
    cpu().add(a, c, ref);
    Tensor y = poisoned({n});
    kernel_table(b).add(on_cuda(a), on_cuda(c), y);
    EXPECT_MATCHES(y, ref, (Tol{1e-6, 0}));
  }
}

ENGINE_SLOT_CHECK(add_inplace) {
  for (int64_t n : sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Tensor y0 = randn({n}, 3 + n), x = randn({n}, 4 + n, 0.f, 2.f);
    const float alpha = -0.75f;
    Tensor ref = y0.clone();
    cpu().add_inplace(ref, x, alpha);
    Tensor y = on_cuda(y0);
    kernel_table(b).add_inplace(y, on_cuda(x), alpha);
    EXPECT_MATCHES(y, ref, (Tol{5e-7, 5e-7}));
  }
}

ENGINE_SLOT_CHECK(scale_inplace) {
  for (int64_t n : sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Tensor y0 = randn({n}, 5 + n);
    Tensor ref = y0.clone();
    cpu().scale_inplace(ref, 1.7f);
    Tensor y = on_cuda(y0);
    kernel_table(b).scale_inplace(y, 1.7f);
    EXPECT_MATCHES(y, ref, (Tol{1e-6, 0}));
  }
}

ENGINE_SLOT_CHECK(sum_squares) {
  for (int64_t n : sizes()) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Tensor x = randn({n}, 6 + n, 0.f, 2.f);
    const double ref = cpu().sum_squares(x);
    const double ours = kernel_table(b).sum_squares(on_cuda(x));
    ASSERT_GT(ref, 0.0);
    EXPECT_LE(std::abs(ours - ref) / ref, 1e-9) << "ours " << ours << ", cpu " << ref;
  }
}

}  // namespace

}  // namespace engine::testing
