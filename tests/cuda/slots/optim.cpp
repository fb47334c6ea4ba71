// The cross-backend harness's cases for the optimizer updates slots
// (tests/cuda/test_cuda_backends.cpp runs them on every CUDA backend against the CPU kernel).
// Tolerances, {rtol, atol} as EXPECT_MATCHES takes them: {5e-7, 5e-7} per step over five steps: the
// same float operations in the same order with the same float scalars, differing only where one
// compiler contracts an FMA.
//
// Five steps of each configuration on the same parameters, state and fresh gradients, comparing the
// parameter and every state tensor after each step (so Adam's bias corrections are checked at step
// 1 and step 5). State starts at random valid values rather than PyTorch's zeros, so that every
// term contributes from step 1. Unused state tensors are passed undefined; SGD's momentum buffer is
// NaN before the first step, which must not read it.
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

constexpr int kSteps = 5;
constexpr Tol kOptimTol{5e-7, 5e-7};

// One tensor's CPU reference and its CUDA copy, updated side by side; both undefined for a state
// tensor the configuration does not use.
struct Pair {
  Tensor cpu, gpu;
  static Pair of(const Tensor& t) { return {t.clone(), on_cuda(t)}; }
};

void expect_matches(const Pair& p, const char* what) {
  if (!p.cpu.defined()) return;
  SCOPED_TRACE(what);
  EXPECT_MATCHES(p.gpu, p.cpu, kOptimTol);
}

// |normal(0, 1)| * scale + lo: positive state (squared averages).
Tensor positive(int64_t n, uint64_t seed, float lo, float scale) {
  std::vector<float> v = randn({n}, seed).to_vector();
  for (float& e : v) e = std::abs(e) * scale + lo;
  return Tensor::from_vector({n}, v);
}

Pair gradient(int64_t n, int step, uint64_t salt) {
  return Pair::of(randn({n}, salt * 1000 + static_cast<uint64_t>(step)));
}

ENGINE_SLOT_CHECK(sgd_update) {
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
    for (int64_t n : sizes()) {
      SCOPED_TRACE(std::string(c.name) + ", n = " + std::to_string(n));
      ++salt;
      Pair param = Pair::of(randn({n}, salt));
      Pair buf = c.momentum != 0 ? Pair::of(Tensor::full({n}, std::nanf(""))) : Pair{};
      for (int step = 1; step <= kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const SgdHyper h{0.1, c.momentum, c.dampening, c.weight_decay, c.nesterov, step == 1};
        const Pair g = gradient(n, step, salt);
        cpu().sgd_update(param.cpu, g.cpu, buf.cpu, h);
        kernel_table(b).sgd_update(param.gpu, g.gpu, buf.gpu, h);
        expect_matches(param, "param");
        expect_matches(buf, "momentum_buffer");
      }
    }
  }
}

ENGINE_SLOT_CHECK(rmsprop_update) {
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
    for (int64_t n : sizes()) {
      SCOPED_TRACE(std::string(c.name) + ", n = " + std::to_string(n));
      ++salt;
      Pair param = Pair::of(randn({n}, salt));
      // square_avg >= grad_avg^2 + 0.1, so the centered variance stays well away from zero.
      const Tensor ga0 = randn({n}, salt + 1, 0.f, 0.3f);
      std::vector<float> sa0 = positive(n, salt + 2, 0.1f, 0.5f).to_vector();
      const std::vector<float> ga0v = ga0.to_vector();
      for (size_t i = 0; i < sa0.size(); ++i) sa0[i] += ga0v[i] * ga0v[i];
      Pair square_avg = Pair::of(Tensor::from_vector({n}, sa0));
      Pair grad_avg = c.centered ? Pair::of(ga0) : Pair{};
      Pair buf = c.momentum > 0 ? Pair::of(randn({n}, salt + 3, 0.f, 0.1f)) : Pair{};
      const RmspropHyper h{0.01, 0.99, 1e-8, c.weight_decay, c.momentum, c.centered};
      for (int step = 1; step <= kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const Pair g = gradient(n, step, salt);
        cpu().rmsprop_update(param.cpu, g.cpu, square_avg.cpu, grad_avg.cpu, buf.cpu, h);
        kernel_table(b).rmsprop_update(param.gpu, g.gpu, square_avg.gpu, grad_avg.gpu, buf.gpu, h);
        expect_matches(param, "param");
        expect_matches(square_avg, "square_avg");
        expect_matches(grad_avg, "grad_avg");
        expect_matches(buf, "momentum_buffer");
      }
    }
  }
}

ENGINE_SLOT_CHECK(adam_update) {
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
    for (int64_t n : sizes()) {
      SCOPED_TRACE(std::string(c.name) + ", n = " + std::to_string(n));
      ++salt;
      Pair param = Pair::of(randn({n}, salt));
      Pair exp_avg = Pair::of(randn({n}, salt + 1, 0.f, 0.1f));
      Pair exp_avg_sq = Pair::of(positive(n, salt + 2, 1e-4f, 1e-3f));
      for (int step = 1; step <= kSteps; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        const AdamHyper h{0.01, 0.9, 0.999, 1e-8, c.weight_decay, c.decoupled, step};
        const Pair g = gradient(n, step, salt);
        cpu().adam_update(param.cpu, g.cpu, exp_avg.cpu, exp_avg_sq.cpu, h);
        kernel_table(b).adam_update(param.gpu, g.gpu, exp_avg.gpu, exp_avg_sq.gpu, h);
        expect_matches(param, "param");
        expect_matches(exp_avg, "exp_avg");
        expect_matches(exp_avg_sq, "exp_avg_sq");
      }
    }
  }
}

}  // namespace

}  // namespace engine::testing
