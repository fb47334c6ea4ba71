// Native CUDA concat and softmax cross-entropy against the CPU kernels on the same random inputs,
// outputs poisoned with NaN.
// Concat: along dims 0, 1 (NCHW channels) and the last, with 2-3 parts of different sizes, plus a
// channel concat larger than one grid's worth; forward and backward (split) must be exact (0):
// they only copy.
// Cross-entropy: C in {6, 1000}, N in {1, 8, 67}, with and without class weights and label
// smoothing, and logits scaled to +-150 (exp() would overflow without the max shift). Tolerance
// 1e-5 relative to max|ref| for the loss, the probabilities and the logits' gradient: both sides
// take the same float exponentials up to the libraries' last-bit differences (CUDA's expf is
// within 2 ulp) and sum in double, in different orders (~1e-16); the float products of the
// gradient may be contracted into FMAs differently. Expected differences are a few 1e-7.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

Tensor randn(const Shape& s, uint64_t seed, float stddev = 1.f) {
  Generator gen(seed);
  return Tensor::randn(s, gen, 0.f, stddev);
}

Tensor poisoned(const Shape& s) {
  return Tensor::from_vector(
      s, std::vector<float>(shape_numel(s), std::numeric_limits<float>::quiet_NaN()),
      Device::cuda());
}

std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& p : shapes) s += shape_str(p) + " ";
  return s;
}

void check_concat(const std::vector<Shape>& parts, int64_t dim, uint64_t seed) {
  SCOPED_TRACE(shapes_str(parts) + "along dim " + std::to_string(dim));
  std::vector<Tensor> xs, xs_gpu;
  Shape out = parts[0];
  out[dim] = 0;
  for (const Shape& p : parts) {
    xs.push_back(randn(p, seed++));
    xs_gpu.push_back(xs.back().to(Device::cuda()));
    out[dim] += p[dim];
  }
  Tensor y_ref = Tensor::empty(out);
  cpu_k().concat_forward(xs, dim, y_ref);
  Tensor y = poisoned(out);
  gpu_k().concat_forward(xs_gpu, dim, y);
  EXPECT_CLOSE(y, y_ref, 0.0);

  Tensor gy = randn(out, seed++);
  std::vector<Tensor> gx_ref, gx;
  for (const Shape& p : parts) {
    gx_ref.push_back(Tensor::empty(p));
    gx.push_back(poisoned(p));
  }
  cpu_k().concat_backward(gy, dim, gx_ref);
  gpu_k().concat_backward(gy.to(Device::cuda()), dim, gx);
  for (size_t i = 0; i < parts.size(); ++i) {
    SCOPED_TRACE("part " + std::to_string(i));
    EXPECT_CLOSE(gx[i], gx_ref[i], 0.0);
  }
}

TEST(CudaConcat, MatchesCpuAlongEachDim) {
  ENGINE_REQUIRE_CUDA();
  check_concat({{2, 3, 4}, {1, 3, 4}, {3, 3, 4}}, 0, 10);
  check_concat({{5, 7}, {2, 7}}, 0, 20);
  check_concat({{2, 3, 5, 5}, {2, 1, 5, 5}, {2, 4, 5, 5}}, 1, 30);
  check_concat({{8, 96}, {8, 161}}, 1, 40);  // feature vectors side by side [N, F]
  check_concat({{3, 4, 2}, {3, 4, 5}, {3, 4, 1}}, 2, 50);
  check_concat({{2, 3, 7, 1}, {2, 3, 7, 3}}, 3, 60);
  check_concat({{16, 256, 16, 16}, {16, 128, 16, 16}}, 1, 70);  // 1.6M elements
}

struct CeCase {
  int64_t n, c;
  bool weighted;
  float smoothing;
  float logit_scale;
};

std::string label(const CeCase& k) {
  return "N " + std::to_string(k.n) + ", C " + std::to_string(k.c) +
         (k.weighted ? ", weighted" : "") + ", smoothing " + std::to_string(k.smoothing) +
         ", logits x" + std::to_string(k.logit_scale);
}

std::vector<CeCase> ce_cases() {
  std::vector<CeCase> v;
  for (int64_t c : {6, 1000})
    for (int64_t n : {1, 8, 67})
      for (bool weighted : {false, true})
        for (float smoothing : {0.f, 0.1f}) v.push_back({n, c, weighted, smoothing, 3.f});
  v.push_back({8, 6, true, 0.1f, 50.f});
  v.push_back({67, 1000, false, 0.f, 50.f});
  return v;
}

TEST(CudaCrossEntropy, ForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 1000;
  for (const CeCase& k : ce_cases()) {
    SCOPED_TRACE(label(k));
    Generator gen(seed++);
    Tensor logits = randn({k.n, k.c}, seed++, k.logit_scale);
    std::vector<int64_t> t(k.n);
    for (int64_t& e : t) e = static_cast<int64_t>(gen.below(static_cast<uint64_t>(k.c)));
    Tensor targets = Tensor::from_vector_i64({k.n}, t);
    Tensor weight = k.weighted ? Tensor::rand({k.c}, gen, 0.2f, 2.f) : Tensor();

    Tensor loss_ref = Tensor::empty({}), probs_ref = Tensor::empty({k.n, k.c});
    cpu_k().cross_entropy_forward(logits, targets, weight, k.smoothing, loss_ref, probs_ref);
    Tensor loss = poisoned({}), probs = poisoned({k.n, k.c});
    gpu_k().cross_entropy_forward(logits.to(Device::cuda()), targets.to(Device::cuda()),
                                  k.weighted ? weight.to(Device::cuda()) : Tensor(), k.smoothing,
                                  loss, probs);
    EXPECT_CLOSE(loss, loss_ref, 1e-5);
    EXPECT_CLOSE(probs, probs_ref, 1e-5);
  }
}

// Backward from the CPU's probabilities, so that only the gradient kernel is compared.
TEST(CudaCrossEntropy, BackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 2000;
  for (const CeCase& k : ce_cases()) {
    SCOPED_TRACE(label(k));
    Generator gen(seed++);
    Tensor logits = randn({k.n, k.c}, seed++, k.logit_scale);
    std::vector<int64_t> t(k.n);
    for (int64_t& e : t) e = static_cast<int64_t>(gen.below(static_cast<uint64_t>(k.c)));
    Tensor targets = Tensor::from_vector_i64({k.n}, t);
    Tensor weight = k.weighted ? Tensor::rand({k.c}, gen, 0.2f, 2.f) : Tensor();
    Tensor loss = Tensor::empty({}), probs = Tensor::empty({k.n, k.c});
    cpu_k().cross_entropy_forward(logits, targets, weight, k.smoothing, loss, probs);

    const float grad_loss = 0.75f;
    Tensor g_ref = Tensor::empty({k.n, k.c});
    cpu_k().cross_entropy_backward(probs, targets, weight, k.smoothing, grad_loss, g_ref);
    Tensor g = poisoned({k.n, k.c});
    gpu_k().cross_entropy_backward(probs.to(Device::cuda()), targets.to(Device::cuda()),
                                   k.weighted ? weight.to(Device::cuda()) : Tensor(), k.smoothing,
                                   grad_loss, g);
    EXPECT_CLOSE(g, g_ref, 1e-5);
  }
}

}  // namespace
}  // namespace engine
