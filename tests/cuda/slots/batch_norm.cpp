// The cross-backend harness's cases for the batch norm slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// batch norm native: y {5e-7, 5e-7}, statistics, running statistics and every gradient
// {0, 1e-6}. Both sides accumulate sums in double and round once (1 ulp ~ 1.2e-7); y and gx are
// a few float operations on the same per-channel constants, where nvcc and the host compiler may
// contract different a * b + c into FMAs. cudnn: y {5e-6, 5e-6}, statistics {0, 1e-5} (cuDNN
// accumulates in float); backward {0, 1e-4}.
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

constexpr float kMomentum = 0.1f, kEps = 1e-5f;

struct BnCase {
  Shape shape;
  bool large;      // main combinations only
  bool eval_only;  // one value per channel: no unbiased batch variance to train with
};

// x = 3 + 2 * randn, so a variance taken as E[x^2] - E[x]^2 in float would lose digits. The scalar
// path (S % 4 != 0: [1,3,5,7], [8,17,13,11], [4,6,5,7], [1,3,9,11], [16,8,55,57] with several
// blocks per channel, [3,4,10], and S = 1: [7,19], [8,5], and the eval-mode op's own [1, C] row)
// and the float4 path ([2,5,4,6], and [64,32,56,56] with several blocks per channel).
const std::vector<BnCase>& bn_cases() {
  static const std::vector<BnCase> c = {
      {{1, 3, 5, 7}, false, false},    {{8, 17, 13, 11}, false, false},
      {{2, 5, 4, 6}, false, false},    {{4, 6, 5, 7}, false, false},
      {{1, 3, 9, 11}, false, false},   {{3, 4, 10}, false, false},
      {{7, 19}, false, false},         {{8, 5}, false, false},
      {{1, 7}, false, true},           {{16, 8, 55, 57}, false, false},
      {{64, 32, 56, 56}, true, false},
  };
  return c;
}

Tensor variances(int64_t c, uint64_t salt) { return uniform({c}, salt, 0.5f, 2.5f); }

std::string bn_label(const Shape& s, bool affine) {
  return shape_str(s) + (affine ? ", affine" : ", no affine");
}

ENGINE_SLOT_CHECK(batch_norm_forward_train) {
  const Tol y_tol = cudnn(b) ? Tol{5e-6, 5e-6} : Tol{5e-7, 5e-7};
  const Tol stat_tol = cudnn(b) ? Tol{0, 1e-5} : Tol{0, 1e-6};
  uint64_t salt = 1;
  for (const BnCase& tc : bn_cases()) {
    if (tc.eval_only) continue;
    const int64_t c = tc.shape[1];
    const Tensor x = randn(tc.shape, ++salt, 3.f, 2.f), xd = on_cuda(x);
    for (bool affine : {true, false}) {
      for (int running : {2, 0, 1}) {  // both running buffers, none, running_mean only
        if (tc.large && (!affine || running != 2)) continue;
        SCOPED_TRACE(bn_label(tc.shape, affine) + ", running buffers: " + std::to_string(running));
        ++salt;
        const Tensor w = affine ? randn({c}, salt + 100, 1.f, 0.5f) : Tensor();
        const Tensor bias = affine ? randn({c}, salt + 200) : Tensor();
        const Tensor rm0 = running ? randn({c}, salt + 300) : Tensor();
        const Tensor rv0 = running == 2 ? variances(c, salt) : Tensor();

        Tensor y_ref = Tensor::empty(tc.shape), mean_ref = Tensor::empty({c}),
               invstd_ref = Tensor::empty({c});
        Tensor rm_ref = rm0.defined() ? rm0.clone() : Tensor();
        Tensor rv_ref = rv0.defined() ? rv0.clone() : Tensor();
        cpu().batch_norm_forward_train(x, w, bias, y_ref, mean_ref, invstd_ref, rm_ref, rv_ref,
                                       kMomentum, kEps);

        Tensor y = poisoned(tc.shape), mean = poisoned({c}), invstd = poisoned({c});
        Tensor rm = on_cuda(rm0), rv = on_cuda(rv0);
        kernel_table(b).batch_norm_forward_train(xd, on_cuda(w), on_cuda(bias), y, mean, invstd, rm,
                                                 rv, kMomentum, kEps);
        EXPECT_MATCHES(y, y_ref, y_tol);
        EXPECT_MATCHES(mean, mean_ref, stat_tol);
        EXPECT_MATCHES(invstd, invstd_ref, stat_tol);
        if (rm.defined()) {
          EXPECT_MATCHES(rm, rm_ref, stat_tol);
        }
        if (rv.defined()) {
          EXPECT_MATCHES(rv, rv_ref, stat_tol);
        }
      }
    }
  }
}

ENGINE_SLOT_CHECK(batch_norm_forward_eval) {
  const Tol tol = cudnn(b) ? Tol{5e-6, 5e-6} : Tol{5e-7, 5e-7};
  uint64_t salt = 50;
  for (const BnCase& tc : bn_cases()) {
    const int64_t c = tc.shape[1];
    const Tensor x = randn(tc.shape, ++salt, 3.f, 2.f);
    for (bool affine : {true, false}) {
      if (tc.large && !affine) continue;
      SCOPED_TRACE(bn_label(tc.shape, affine));
      ++salt;
      const Tensor w = affine ? randn({c}, salt + 100, 1.f, 0.5f) : Tensor();
      const Tensor bias = affine ? randn({c}, salt + 200) : Tensor();
      const Tensor rm = randn({c}, salt + 300, 3.f), rv = variances(c, salt);
      Tensor ref = Tensor::empty(tc.shape);
      cpu().batch_norm_forward_eval(x, w, bias, rm, rv, ref, kEps);
      Tensor y = poisoned(tc.shape);
      kernel_table(b).batch_norm_forward_eval(on_cuda(x), on_cuda(w), on_cuda(bias), on_cuda(rm),
                                              on_cuda(rv), y, kEps);
      EXPECT_MATCHES(y, ref, tol);
    }
  }
}

// Training (the batch statistics a training forward saves; cuDNN runs it) and eval (running
// statistics, constants; the cudnn backend hands it to the native kernel), weight defined and not,
// every subset of {gx, gw, gb} (the empty one must simply do nothing). The large shape runs the
// main subsets only.
ENGINE_SLOT_CHECK(batch_norm_backward) {
  const Tol tol = cudnn(b) ? Tol{0, 1e-4} : Tol{0, 1e-6};
  uint64_t salt = 100;
  for (const BnCase& tc : bn_cases()) {
    if (tc.eval_only) continue;
    const int64_t c = tc.shape[1];
    const Tensor x = randn(tc.shape, ++salt, 3.f, 2.f), xd = on_cuda(x);
    const Tensor gy = randn(tc.shape, ++salt), gyd = on_cuda(gy);
    Tensor batch_mean = Tensor::empty({c}), batch_invstd = Tensor::empty({c});
    {
      Tensor y = Tensor::empty(tc.shape), none;
      cpu().batch_norm_forward_train(x, Tensor(), Tensor(), y, batch_mean, batch_invstd, none, none,
                                     kMomentum, kEps);
    }
    const Tensor run_mean = randn({c}, ++salt, 3.f), run_invstd = variances(c, salt);
    for (bool training : {true, false}) {
      const Tensor& mean = training ? batch_mean : run_mean;
      const Tensor& invstd = training ? batch_invstd : run_invstd;
      const Tensor mean_d = on_cuda(mean), invstd_d = on_cuda(invstd);
      for (bool affine : {true, false}) {
        const Tensor w = affine ? randn({c}, ++salt, 1.f, 0.5f) : Tensor(), wd = on_cuda(w);
        for (int wanted = 0; wanted < 8; ++wanted) {
          const bool want_gx = wanted & 1, want_gw = wanted & 2, want_gb = wanted & 4;
          if (tc.large && (!affine || (wanted != 7 && wanted != 1 && wanted != 6))) continue;
          SCOPED_TRACE(bn_label(tc.shape, affine) + (training ? ", training" : ", eval") +
                       ", gx/gw/gb wanted: " + std::to_string(want_gx) + std::to_string(want_gw) +
                       std::to_string(want_gb));
          Tensor gx_ref = empty_if(want_gx, tc.shape), gw_ref = empty_if(want_gw, {c}),
                 gb_ref = empty_if(want_gb, {c});
          cpu().batch_norm_backward(gy, x, w, mean, invstd, training, gx_ref, gw_ref, gb_ref);
          Tensor gx = poisoned_if(want_gx, tc.shape), gw = poisoned_if(want_gw, {c}),
                 gb = poisoned_if(want_gb, {c});
          kernel_table(b).batch_norm_backward(gyd, xd, wd, mean_d, invstd_d, training, gx, gw, gb);
          if (want_gx) {
            EXPECT_MATCHES(gx, gx_ref, tol);
          }
          if (want_gw) {
            EXPECT_MATCHES(gw, gw_ref, tol);
          }
          if (want_gb) {
            EXPECT_MATCHES(gb, gb_ref, tol);
          }
        }
      }
    }
  }
}

}  // namespace

}  // namespace engine::testing
