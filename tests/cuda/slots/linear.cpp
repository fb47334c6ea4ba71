// The cross-backend harness's cases for the linear slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// linear: max|ours - ref| <= 1e-5 * max(1, sqrt(L / 1000)) * max(max|ref|, sqrt(L)) for a product
// summing L terms, element-wise (see gemm_tol); gb exact native (both sum the rows in order in
// float), {0, 1e-5} cudnn (cuBLAS sums in its own order). Both sides round running sums in float
// in different orders (FMA chains and split-K partials here, OpenBLAS's or cuBLAS's blocking
// there); with unit-variance inputs the roundings add like a random walk to ~0.4 * 6e-8 * L,
// against outputs of ~sqrt(L): ~3e-7 to ~1e-6 of max|ref| times sqrt(L / 1000), and the bound
// leaves room for a 3-4 sigma tail. The sqrt(L) floor is the typical output: with one output
// max|ref| can be small by chance while the terms' rounding is not. The shapes that came from the
// cuDNN/cuBLAS tests (M 1, 5, 64 by K 7, 33, 300) are held, as there, without the floor.
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

// See the header: the bound for a product summing `terms` terms.
double gemm_tol(int64_t terms) {
  return 1e-5 * std::max(1.0, std::sqrt(static_cast<double>(terms) / 1000.0));
}

// Element-wise |ours - ref| <= gemm_tol(terms) * max(max|ref|, floor), floor = sqrt(terms) or 0.
double gemm_scale(const Tensor& ref, int64_t terms, bool floor) {
  return std::max(max_abs(ref), floor ? std::sqrt(static_cast<double>(terms)) : 0.0);
}
#define EXPECT_GEMM_MATCHES(ours, ref, terms, floor)                                             \
  EXPECT_TRUE(allclose((ours), (ref), 0, gemm_tol(terms) * gemm_scale((ref), (terms), (floor)))) \
      << "comparing " #ours " to " #ref ", " << (terms) << " terms"

struct Mkn {
  int64_t m, k, n;    // y[m, n] = x[m, k] w[n, k]^T
  bool no_bias;       // also the forward without bias
  bool grad_subsets;  // also the gw-only and gb-only backward
  bool floor = true;  // the sqrt(L) floor of the bound
};

std::string label(const Mkn& s) {
  return "M " + std::to_string(s.m) + ", K " + std::to_string(s.k) + ", N " + std::to_string(s.n);
}

// Rows M in {1, 7, 64}, inner K in {1, 33, 4097}, columns N in {1, 6, 130}: partial 64x64x8 tiles
// everywhere, and K = 4097 with few tiles already splits K. Then cuBLAS-sized layers, and long-K
// shapes (the split-K path and its reduction; the same layers' backward products have long N and
// short K): M 8, K 65536, N 6; M 64, K 16384, N 512; the study's fc1, M 64, K 65536, N 256.
const std::vector<Mkn>& linear_cases() {
  static const std::vector<Mkn> c = [] {
    std::vector<Mkn> v;
    for (int64_t m : {1, 7, 64})
      for (int64_t k : {1, 33, 4097})
        for (int64_t n : {1, 6, 130}) v.push_back({m, k, n, true, m == 7 && k == 33 && n == 6});
    for (Mkn s : {Mkn{1, 7, 3, true, true, false}, Mkn{5, 33, 17, true, true, false},
                  Mkn{64, 300, 129, true, true, false}, Mkn{8, 65536, 6, false, false},
                  Mkn{64, 16384, 512, false, false}, Mkn{64, 65536, 256, false, false}})
      v.push_back(s);
    return v;
  }();
  return c;
}

uint64_t seed_of(const Mkn& s) { return static_cast<uint64_t>((s.m * 1000003 + s.k) * 1009 + s.n); }

ENGINE_SLOT_CHECK(linear_forward) {
  for (const Mkn& s : linear_cases()) {
    for (bool bias : {true, false}) {
      if (!bias && !s.no_bias) continue;
      SCOPED_TRACE(label(s) + (bias ? ", bias" : ", no bias"));
      const uint64_t seed = seed_of(s) + (bias ? 0 : 5);
      const Tensor x = randn({s.m, s.k}, seed), w = randn({s.n, s.k}, seed + 1);
      const Tensor bs = bias ? randn({s.n}, seed + 2) : Tensor();
      Tensor ref = Tensor::empty({s.m, s.n});
      cpu().linear_forward(x, w, bs, ref);
      Tensor y = poisoned({s.m, s.n});
      kernel_table(b).linear_forward(on_cuda(x), on_cuda(w), on_cuda(bs), y);
      EXPECT_GEMM_MATCHES(y, ref, s.k, s.floor);
    }
  }
}

// gx[m, k] = gy[m, n] w[n, k]: a sum over the n outputs.
ENGINE_SLOT_CHECK(linear_backward_data) {
  for (const Mkn& s : linear_cases()) {
    SCOPED_TRACE(label(s));
    const uint64_t seed = seed_of(s) + 10;
    const Tensor gy = randn({s.m, s.n}, seed), w = randn({s.n, s.k}, seed + 1);
    Tensor ref = Tensor::empty({s.m, s.k});
    cpu().linear_backward_data(gy, w, ref);
    Tensor gx = poisoned({s.m, s.k});
    kernel_table(b).linear_backward_data(on_cuda(gy), on_cuda(w), gx);
    EXPECT_GEMM_MATCHES(gx, ref, s.n, s.floor);
  }
}

// gw[n, k] = gy[m, n]^T x[m, k] and gb[n] = sum_rows gy: sums over the m rows. gw-only is a layer
// without bias, gb-only a frozen weight with a trainable bias.
ENGINE_SLOT_CHECK(linear_backward_weight) {
  const Tol gb_tol = cudnn(b) ? Tol{0, 1e-5} : kExact;
  for (const Mkn& s : linear_cases()) {
    for (int which : {0, 1, 2}) {  // both, gw only, gb only
      if (which != 0 && !s.grad_subsets) continue;
      const bool want_w = which != 2, want_b = which != 1;
      SCOPED_TRACE(label(s) + (want_w ? ", gw" : "") + (want_b ? ", gb" : ""));
      const uint64_t seed = seed_of(s) + 20 + static_cast<uint64_t>(which);
      const Tensor gy = randn({s.m, s.n}, seed), x = randn({s.m, s.k}, seed + 1);
      Tensor gw_ref = empty_if(want_w, {s.n, s.k}), gb_ref = empty_if(want_b, {s.n});
      cpu().linear_backward_weight(gy, x, gw_ref, gb_ref);
      Tensor gw = poisoned_if(want_w, {s.n, s.k}), gb = poisoned_if(want_b, {s.n});
      kernel_table(b).linear_backward_weight(on_cuda(gy), on_cuda(x), gw, gb);
      if (want_w) {
        EXPECT_GEMM_MATCHES(gw, gw_ref, s.m, s.floor);
      }
      if (want_b) {
        EXPECT_MATCHES(gb, gb_ref, gb_tol);
      }
    }
  }
}

}  // namespace

}  // namespace engine::testing
