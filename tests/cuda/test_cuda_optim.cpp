// Native CUDA fused optimizer updates against the CPU kernels: five steps of each configuration on
// the same parameters, state and fresh gradients, comparing the parameter and every state tensor
// after each step (so Adam's bias corrections are checked at step 1 and step 5). State starts at
// random valid values rather than PyTorch's zeros, so that every term contributes from step 1.
// Unused state tensors are passed undefined; SGD's momentum buffer is NaN before the first step,
// which must not read it.
// Tolerance 1e-6 of max|ref|: both sides run the same float operations in the same order with the
// same float scalars (derived in double on the host), so they differ only where nvcc and the host
// compiler contract a different a * b + c into an FMA: an ulp or two per operation (1.2e-7
// relative each), a few such per step, over five steps.
#include <cmath>
#include <limits>

#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::fast_randn;

using testing::test_sizes;

Tensor random_tensor(int64_t n, uint64_t seed, float stddev = 1.f) {
  return fast_randn({n}, seed, 0.f, stddev);
}

constexpr double kTol = 1e-6;
constexpr int kSteps = 5;

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

// One tensor's CPU reference and its CUDA copy, updated side by side. Both undefined for a state
// tensor the configuration does not use.
struct Pair {
  Tensor cpu, gpu;
  static Pair of(const Tensor& t) { return {t.clone(), t.to(Device::cuda())}; }
};

Tensor from(const std::vector<float>& v) {
  return Tensor::from_vector({static_cast<int64_t>(v.size())}, v);
}

// |normal(0, 1)| * scale + lo: positive state (squared averages).
Tensor positive(int64_t n, uint64_t seed, float lo, float scale) {
  std::vector<float> v = random_tensor(n, seed).to_vector();
  for (float& e : v) e = std::abs(e) * scale + lo;
  return from(v);
}

Tensor nans(int64_t n) {
  return from(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}

void expect_close(const Pair& p, const char* what) {
  if (!p.cpu.defined()) return;
  SCOPED_TRACE(what);
  EXPECT_CLOSE(p.gpu, p.cpu, kTol);
}

// A fresh gradient per (size, step, configuration).
Pair gradient(int64_t n, int step, uint64_t salt) {
  return Pair::of(random_tensor(n, salt * 1000 + static_cast<uint64_t>(step)));
}

TEST(CudaOptim, SgdMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  struct Config {
    const char* name;
    double momentum, dampening, weight_decay;
    bool nesterov;
  };
  const Config configs[] = {
      {"plain", 0.0, 0.0, 0.0, false},
      {"weight decay", 0.0, 0.0, 1e-2, false},
      {"momentum, dampening, weight decay", 0.9, 0.1, 5e-4, false},
      {"nesterov, weight decay", 0.9, 0.0, 1e-2, true},
  };
  uint64_t salt = 1;
  for (const Config& c : configs) {
    for (int64_t n : test_sizes()) {
      SCOPED_TRACE(std::string(c.name) + ", n = " + std::to_string(n));
      ++salt;
      Pair param = Pair::of(random_tensor(n, salt));
      Pair buf = c.momentum != 0 ? Pair::of(nans(n)) : Pair{};
      for (int step = 1; step <= kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const SgdHyper h{0.1, c.momentum, c.dampening, c.weight_decay, c.nesterov, step == 1};
        const Pair g = gradient(n, step, salt);
        cpu_k().sgd_update(param.cpu, g.cpu, buf.cpu, h);
        gpu_k().sgd_update(param.gpu, g.gpu, buf.gpu, h);
        expect_close(param, "param");
        expect_close(buf, "momentum_buffer");
      }
    }
  }
}

TEST(CudaOptim, RmspropMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  struct Config {
    const char* name;
    double weight_decay, momentum;
    bool centered;
  };
  const Config configs[] = {
      {"plain", 0.0, 0.0, false},
      {"centered", 0.0, 0.0, true},
      {"momentum, weight decay", 1e-2, 0.9, false},
      {"centered, momentum, weight decay", 1e-2, 0.5, true},
  };
  uint64_t salt = 100;
  for (const Config& c : configs) {
    for (int64_t n : test_sizes()) {
      SCOPED_TRACE(std::string(c.name) + ", n = " + std::to_string(n));
      ++salt;
      Pair param = Pair::of(random_tensor(n, salt));
      // square_avg >= grad_avg^2 + 0.1, so the centered variance stays well away from zero.
      const Tensor ga0 = random_tensor(n, salt + 1, 0.3f);
      std::vector<float> sa0 = positive(n, salt + 2, 0.1f, 0.5f).to_vector();
      const std::vector<float> ga0v = ga0.to_vector();
      for (size_t i = 0; i < sa0.size(); ++i) sa0[i] += ga0v[i] * ga0v[i];
      Pair square_avg = Pair::of(from(sa0));
      Pair grad_avg = c.centered ? Pair::of(ga0) : Pair{};
      Pair buf = c.momentum > 0 ? Pair::of(random_tensor(n, salt + 3, 0.1f)) : Pair{};
      const RmspropHyper h{0.01, 0.99, 1e-8, c.weight_decay, c.momentum, c.centered};
      for (int step = 1; step <= kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const Pair g = gradient(n, step, salt);
        cpu_k().rmsprop_update(param.cpu, g.cpu, square_avg.cpu, grad_avg.cpu, buf.cpu, h);
        gpu_k().rmsprop_update(param.gpu, g.gpu, square_avg.gpu, grad_avg.gpu, buf.gpu, h);
        expect_close(param, "param");
        expect_close(square_avg, "square_avg");
        expect_close(grad_avg, "grad_avg");
        expect_close(buf, "momentum_buffer");
      }
    }
  }
}

TEST(CudaOptim, AdamMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  struct Config {
    const char* name;
    double weight_decay;
    bool decoupled;
  };
  const Config configs[] = {
      {"adam", 0.0, false},
      {"adam, weight decay", 1e-2, false},
      {"adamw", 1e-2, true},
  };
  uint64_t salt = 200;
  for (const Config& c : configs) {
    for (int64_t n : test_sizes()) {
      SCOPED_TRACE(std::string(c.name) + ", n = " + std::to_string(n));
      ++salt;
      Pair param = Pair::of(random_tensor(n, salt));
      Pair exp_avg = Pair::of(random_tensor(n, salt + 1, 0.1f));
      Pair exp_avg_sq = Pair::of(positive(n, salt + 2, 1e-4f, 1e-3f));
      for (int step = 1; step <= kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const AdamHyper h{0.01, 0.9, 0.999, 1e-8, c.weight_decay, c.decoupled, step};
        const Pair g = gradient(n, step, salt);
        cpu_k().adam_update(param.cpu, g.cpu, exp_avg.cpu, exp_avg_sq.cpu, h);
        gpu_k().adam_update(param.gpu, g.gpu, exp_avg.gpu, exp_avg_sq.gpu, h);
        expect_close(param, "param");
        expect_close(exp_avg, "exp_avg");
        expect_close(exp_avg_sq, "exp_avg_sq");
      }
    }
  }
}

}  // namespace
}  // namespace engine
