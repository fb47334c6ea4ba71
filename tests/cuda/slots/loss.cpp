// The cross-backend harness's cases for the cross-entropy slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// cross-entropy loss, probabilities and logits' gradient {5e-6, 5e-6}: both sides take the same
// float exponentials up to the libraries' last bits (CUDA's expf within 2 ulp) and sum in double
// in different orders; float products may be contracted into FMAs differently.
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

struct CeCase {
  int64_t n, c;
  bool weighted;
  float smoothing;
  float logit_scale;
};

// C in {6, 1000}, N in {1, 8, 67}, with and without class weights and label smoothing, and logits
// scaled to +-170 (exp() would overflow without the max shift).
const std::vector<CeCase>& ce_cases() {
  static const std::vector<CeCase> v = [] {
    std::vector<CeCase> r;
    for (int64_t c : {6, 1000})
      for (int64_t n : {1, 8, 67})
        for (bool weighted : {false, true})
          for (float smoothing : {0.f, 0.1f}) r.push_back({n, c, weighted, smoothing, 3.f});
    r.push_back({8, 6, true, 0.1f, 50.f});
    r.push_back({67, 1000, false, 0.f, 50.f});
    return r;
  }();
  return v;
}

std::string label(const CeCase& k) {
  return "N " + std::to_string(k.n) + ", C " + std::to_string(k.c) +
         (k.weighted ? ", weighted" : "") + ", smoothing " + std::to_string(k.smoothing) +
         ", logits x" + std::to_string(k.logit_scale);
}

struct CeInputs {
  Tensor logits, targets, weight;
};

CeInputs ce_inputs(const CeCase& k, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> t(k.n);
  for (int64_t& e : t) e = static_cast<int64_t>(gen.below(static_cast<uint64_t>(k.c)));
  return {randn({k.n, k.c}, seed, 0.f, k.logit_scale), Tensor::from_vector_i64({k.n}, t),
          k.weighted ? Tensor::rand({k.c}, gen, 0.2f, 2.f) : Tensor()};
}

constexpr Tol kCeTol{5e-6, 5e-6};

ENGINE_SLOT_CHECK(cross_entropy_forward) {
  uint64_t seed = 1000;
  for (const CeCase& k : ce_cases()) {
    SCOPED_TRACE(label(k));
    const CeInputs in = ce_inputs(k, ++seed);
    Tensor loss_ref = Tensor::empty({}), probs_ref = Tensor::empty({k.n, k.c});
    cpu().cross_entropy_forward(in.logits, in.targets, in.weight, k.smoothing, loss_ref, probs_ref);
    Tensor loss = poisoned({}), probs = poisoned({k.n, k.c});
    kernel_table(b).cross_entropy_forward(on_cuda(in.logits), on_cuda(in.targets),
                                          on_cuda(in.weight), k.smoothing, loss, probs);
    EXPECT_MATCHES(loss, loss_ref, kCeTol);
    EXPECT_MATCHES(probs, probs_ref, kCeTol);
  }
}

// From the CPU's probabilities, so that only the gradient kernel is compared.
ENGINE_SLOT_CHECK(cross_entropy_backward) {
  uint64_t seed = 2000;
  for (const CeCase& k : ce_cases()) {
    SCOPED_TRACE(label(k));
    const CeInputs in = ce_inputs(k, ++seed);
    Tensor loss = Tensor::empty({}), probs = Tensor::empty({k.n, k.c});
    cpu().cross_entropy_forward(in.logits, in.targets, in.weight, k.smoothing, loss, probs);
    const float grad_loss = 0.75f;
    Tensor ref = Tensor::empty({k.n, k.c});
    cpu().cross_entropy_backward(probs, in.targets, in.weight, k.smoothing, grad_loss, ref);
    Tensor g = poisoned({k.n, k.c});
    kernel_table(b).cross_entropy_backward(on_cuda(probs), on_cuda(in.targets), on_cuda(in.weight),
                                           k.smoothing, grad_loss, g);
    EXPECT_MATCHES(g, ref, kCeTol);
  }
}

}  // namespace

}  // namespace engine::testing
