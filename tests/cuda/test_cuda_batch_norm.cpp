// Native CUDA batch norm against the CPU kernels on the same random inputs. x = 3 + 2 * randn, so
// a variance taken as E[x^2] - E[x]^2 in float would lose digits. Shapes cover the scalar path
// (S % 4 != 0: [1,3,5,7], [8,17,13,11], [16,8,55,57] with several blocks per channel, [7,19] with
// S = 1) and the float4 path ([2,5,4,6], and [64,32,56,56] with several blocks per channel).
// Tolerances (max|ours - ref| / max|ref|), all 1e-6: both sides accumulate the statistics and
// gradient sums in double and round once, so save_mean/save_invstd/running stats and gw/gb agree
// to the last float rounding (1 ulp ~ 1.2e-7 relative); y and gx are a few float operations on
// the same per-channel constants, where nvcc and the host compiler may contract different
// a * b + c into FMAs (one or two ulps).
#include <cstring>
#include <limits>

#include "engine/ops.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::fast_randn;

constexpr double kTol = 1e-6;
constexpr float kMomentum = 0.1f, kEps = 1e-5f;

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

Tensor gpu(const Tensor& t) { return t.defined() ? t.to(Device::cuda()) : Tensor(); }

Tensor poisoned(const Shape& shape) {
  return Tensor::from_vector(
      shape, std::vector<float>(shape_numel(shape), std::numeric_limits<float>::quiet_NaN()),
      Device::cuda());
}

Tensor poisoned_cpu(const Shape& shape) {
  return Tensor::from_vector(
      shape, std::vector<float>(shape_numel(shape), std::numeric_limits<float>::quiet_NaN()));
}

// Fresh per call: the seed mixes a per-test salt with the shape.
Tensor randn(const Shape& shape, uint64_t salt, float mean = 0.f, float stddev = 1.f) {
  return fast_randn(shape, salt * 7919, mean, stddev);
}

Tensor positive(int64_t c, uint64_t salt) {  // in [0.5, 2.5): variances and invstds
  Generator gen(salt * 104729 + static_cast<uint64_t>(c));
  return Tensor::rand({c}, gen, 0.5f, 2.5f);
}

std::string shape_name(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

struct Case {
  Shape shape;
  bool large;  // run only the main combinations, to keep the test short
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{1, 3, 5, 7}, false}, {{8, 17, 13, 11}, false}, {{2, 5, 4, 6}, false},
      {{7, 19}, false},      {{16, 8, 55, 57}, false}, {{64, 32, 56, 56}, true},
  };
  return c;
}

TEST(CudaBatchNorm, TrainForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t salt = 1;
  for (const Case& tc : cases()) {
    const int64_t c = tc.shape[1];
    const Tensor x = randn(tc.shape, ++salt, 3.f, 2.f), xd = gpu(x);
    for (bool affine : {true, false}) {
      for (bool running : {true, false}) {
        if (tc.large && (!affine || !running)) continue;
        SCOPED_TRACE(shape_name(tc.shape) + (affine ? " affine" : " no affine") +
                     (running ? ", running stats" : ", no running stats"));
        ++salt;
        const Tensor w = affine ? randn({c}, salt + 100, 1.f, 0.5f) : Tensor();
        const Tensor b = affine ? randn({c}, salt + 200) : Tensor();
        const Tensor rm0 = randn({c}, salt + 300), rv0 = positive(c, salt);

        Tensor y_ref = poisoned_cpu(tc.shape), mean_ref = poisoned_cpu({c}),
               invstd_ref = poisoned_cpu({c});
        Tensor rm_ref = running ? rm0.clone() : Tensor(), rv_ref = running ? rv0.clone() : Tensor();
        cpu_k().batch_norm_forward_train(x, w, b, y_ref, mean_ref, invstd_ref, rm_ref, rv_ref,
                                         kMomentum, kEps);

        Tensor y = poisoned(tc.shape), mean = poisoned({c}), invstd = poisoned({c});
        Tensor rm = running ? gpu(rm0) : Tensor(), rv = running ? gpu(rv0) : Tensor();
        gpu_k().batch_norm_forward_train(xd, gpu(w), gpu(b), y, mean, invstd, rm, rv, kMomentum,
                                         kEps);
        EXPECT_CLOSE(y, y_ref, kTol);
        EXPECT_CLOSE(mean, mean_ref, kTol);
        EXPECT_CLOSE(invstd, invstd_ref, kTol);
        if (running) {
          EXPECT_CLOSE(rm, rm_ref, kTol);
          EXPECT_CLOSE(rv, rv_ref, kTol);
        }
      }
    }
  }
}

TEST(CudaBatchNorm, EvalForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t salt = 50;
  for (const Case& tc : cases()) {
    const int64_t c = tc.shape[1];
    const Tensor x = randn(tc.shape, ++salt, 3.f, 2.f), xd = gpu(x);
    for (bool affine : {true, false}) {
      if (tc.large && !affine) continue;
      SCOPED_TRACE(shape_name(tc.shape) + (affine ? " affine" : " no affine"));
      ++salt;
      const Tensor w = affine ? randn({c}, salt + 100, 1.f, 0.5f) : Tensor();
      const Tensor b = affine ? randn({c}, salt + 200) : Tensor();
      const Tensor rm = randn({c}, salt + 300, 3.f), rv = positive(c, salt);
      Tensor y_ref = poisoned_cpu(tc.shape);
      cpu_k().batch_norm_forward_eval(x, w, b, rm, rv, y_ref, kEps);
      Tensor y = poisoned(tc.shape);
      gpu_k().batch_norm_forward_eval(xd, gpu(w), gpu(b), gpu(rm), gpu(rv), y, kEps);
      EXPECT_CLOSE(y, y_ref, kTol);
    }
  }
}

// Every subset of {gx, gw, gb} (the empty one must simply do nothing), training and eval, weight
// defined and not. The large shape runs the main subsets only.
TEST(CudaBatchNorm, BackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t salt = 100;
  for (const Case& tc : cases()) {
    const int64_t c = tc.shape[1];
    const Tensor x = randn(tc.shape, ++salt, 3.f, 2.f), xd = gpu(x);
    const Tensor gy = randn(tc.shape, ++salt), gyd = gpu(gy);
    // Training mode: the batch statistics a training forward saves. Eval: running statistics.
    Tensor batch_mean = Tensor::empty({c}), batch_invstd = Tensor::empty({c});
    {
      Tensor y = Tensor::empty(tc.shape), none;
      cpu_k().batch_norm_forward_train(x, Tensor(), Tensor(), y, batch_mean, batch_invstd, none,
                                       none, kMomentum, kEps);
    }
    const Tensor run_mean = randn({c}, ++salt, 3.f), run_invstd = positive(c, salt);
    for (bool training : {true, false}) {
      const Tensor& mean = training ? batch_mean : run_mean;
      const Tensor& invstd = training ? batch_invstd : run_invstd;
      const Tensor mean_d = gpu(mean), invstd_d = gpu(invstd);
      for (bool affine : {true, false}) {
        const Tensor w = affine ? randn({c}, ++salt, 1.f, 0.5f) : Tensor(), wd = gpu(w);
        for (int wanted = 0; wanted < 8; ++wanted) {
          const bool want_gx = wanted & 1, want_gw = wanted & 2, want_gb = wanted & 4;
          if (tc.large && (!affine || (wanted != 7 && wanted != 1 && wanted != 6))) continue;
          SCOPED_TRACE(shape_name(tc.shape) + (training ? " training" : " eval") +
                       (affine ? ", affine" : ", no affine") + ", gx/gw/gb wanted: " +
                       std::to_string(want_gx) + std::to_string(want_gw) + std::to_string(want_gb));
          Tensor gx_ref = want_gx ? poisoned_cpu(tc.shape) : Tensor();
          Tensor gw_ref = want_gw ? poisoned_cpu({c}) : Tensor();
          Tensor gb_ref = want_gb ? poisoned_cpu({c}) : Tensor();
          cpu_k().batch_norm_backward(gy, x, w, mean, invstd, training, gx_ref, gw_ref, gb_ref);
          Tensor gx = want_gx ? poisoned(tc.shape) : Tensor();
          Tensor gw = want_gw ? poisoned({c}) : Tensor();
          Tensor gb = want_gb ? poisoned({c}) : Tensor();
          gpu_k().batch_norm_backward(gyd, xd, wd, mean_d, invstd_d, training, gx, gw, gb);
          if (want_gx) {
            EXPECT_CLOSE(gx, gx_ref, kTol);
          }
          if (want_gw) {
            EXPECT_CLOSE(gw, gw_ref, kTol);
          }
          if (want_gb) {
            EXPECT_CLOSE(gb, gb_ref, kTol);
          }
        }
      }
    }
  }
}

// The per-channel reductions fold their partials in a fixed order: two runs agree bit for bit.
TEST(CudaBatchNorm, TrainingStatisticsAreDeterministic) {
  ENGINE_REQUIRE_CUDA();
  const Shape shape = {64, 32, 56, 56};
  const Tensor x = gpu(randn(shape, 7, 3.f, 2.f)), gy = gpu(randn(shape, 8));
  std::vector<std::vector<float>> runs[2];
  for (auto& run : runs) {
    Tensor y = poisoned(shape), mean = poisoned({32}), invstd = poisoned({32}), none;
    gpu_k().batch_norm_forward_train(x, Tensor(), Tensor(), y, mean, invstd, none, none, kMomentum,
                                     kEps);
    Tensor gx = poisoned(shape), gw = poisoned({32}), gb = poisoned({32});
    gpu_k().batch_norm_backward(gy, x, Tensor(), mean, invstd, true, gx, gw, gb);
    for (const Tensor* t : {&y, &mean, &invstd, &gx, &gw, &gb}) run.push_back(t->to_vector());
  }
  for (size_t i = 0; i < runs[0].size(); ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    ASSERT_EQ(runs[0][i].size(), runs[1][i].size());
    EXPECT_EQ(std::memcmp(runs[0][i].data(), runs[1][i].data(), runs[0][i].size() * 4), 0);
  }
}

// Through the op, forward and backward, with the native backend chosen for CUDA tensors.
TEST(CudaBatchNorm, OpOnCudaTensorsMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  BackendScope native(Backend::Native);
  const Shape shape = {4, 6, 9, 8};
  const Tensor x = randn(shape, 11, 3.f, 2.f), gy = randn(shape, 12);
  const Tensor w = randn({6}, 13, 1.f, 0.5f), b = randn({6}, 14);
  Tensor outputs[2][4];  // [cpu, cuda][y, gx, gw, gb]
  for (int dev = 0; dev < 2; ++dev) {
    const Device d = dev ? Device::cuda() : Device::cpu();
    Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d);
    xd.set_requires_grad(true);
    wd.set_requires_grad(true);
    bd.set_requires_grad(true);
    Tensor rm = Tensor::zeros({6}, DType::F32, d), rv = Tensor::full({6}, 1.f, d);
    Tensor y = batch_norm(xd, wd, bd, rm, rv, /*training=*/true, kMomentum, kEps);
    EXPECT_EQ(y.device().is_cuda(), dev == 1);
    y.backward(gy.to(d));
    outputs[dev][0] = y;
    outputs[dev][1] = xd.grad();
    outputs[dev][2] = wd.grad();
    outputs[dev][3] = bd.grad();
  }
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    EXPECT_CLOSE(outputs[1][i], outputs[0][i], kTol);
  }
}

}  // namespace
}  // namespace engine
