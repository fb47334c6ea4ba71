// Native CUDA linear kernels (one tiled SGEMM for y = x w^T + b, gx = gy w and gw = gy^T x, split-K
// for long K, column sums for gb) against the CPU kernels (OpenBLAS) on the same random inputs,
// with NaN-poisoned outputs. Sizes: M (rows of C) in {1, 7, 64}, K in {1, 33, 4097}, N in {1, 6,
// 130}: partial 64x64x8 tiles everywhere, and K = 4097 with few tiles already splits K. Then
// long-K shapes: M 8, K 65536, N 6; M 64, K 16384, N 512; the study's fc1, M 64, K 65536, N 256.
// Tolerance for a product summing L terms: max|ours - ref| / max(max|ref|, sqrt(L)) <= 1e-5 *
// max(1, sqrt(L / 1000)). Both sides round the running sums in float, in different orders
// (per-thread FMA chains and split-K partials here, OpenBLAS's blocking there). With unit-variance
// inputs the partial sums grow like sqrt(l), so the L roundings (unit 6e-8) add up like a random
// walk to ~0.4 * 6e-8 * L per side. Outputs are ~sqrt(L) (max|ref| ~ 4 sqrt(L) over many of
// them), so the difference is ~3e-7 (many outputs) to ~1e-6 (one output) times sqrt(L / 1000),
// relative: the bound leaves room for a 3-4 sigma tail. The sqrt(L) floor is the typical output
// size: with one or a few outputs max|ref| can be small by chance, and the rounding of the terms
// does not shrink with it. gb: 0 (exact; both sum the rows in order in float).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

KernelTable& cpu_k() { return kernel_table(Backend::Cpu); }
KernelTable& gpu_k() { return kernel_table(Backend::Native); }

Tensor randn(const Shape& s, uint64_t seed) {
  Generator gen(seed);
  return Tensor::randn(s, gen);
}

Tensor poisoned(const Shape& s) {
  return Tensor::from_vector(
      s, std::vector<float>(shape_numel(s), std::numeric_limits<float>::quiet_NaN()),
      Device::cuda());
}

Tensor on_cuda(const Tensor& t) { return t.defined() ? t.to(Device::cuda()) : Tensor(); }

double gemm_tol(int64_t terms) {
  return 1e-5 * std::max(1.0, std::sqrt(static_cast<double>(terms) / 1000.0));
}

// max|ours - ref| / max(max|ref|, sqrt(terms)); infinity where ours is not finite but ref is.
double gemm_err(const Tensor& ours, const Tensor& ref, int64_t terms) {
  if (ours.shape() != ref.shape()) return INFINITY;
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  double diff = 0, mag = std::sqrt(static_cast<double>(terms));
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) && std::isfinite(b[i])) return INFINITY;
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    mag = std::max(mag, std::abs(static_cast<double>(b[i])));
  }
  return diff / mag;
}

#define EXPECT_GEMM_CLOSE(ours, ref, terms) \
  EXPECT_LE(gemm_err((ours), (ref), (terms)), gemm_tol(terms)) << "comparing " #ours " to " #ref

uint64_t seed_of(int64_t m, int64_t k, int64_t n) {
  return static_cast<uint64_t>((m * 1000003 + k) * 1009 + n);
}

std::string label(int64_t m, int64_t k, int64_t n) {
  return "M " + std::to_string(m) + ", K " + std::to_string(k) + ", N " + std::to_string(n);
}

// y[m, n] = x[m, k] w[n, k]^T (+ b).
void check_forward(int64_t m, int64_t k, int64_t n, bool bias) {
  SCOPED_TRACE(label(m, k, n) + (bias ? ", bias" : ", no bias"));
  const uint64_t seed = seed_of(m, k, n);
  Tensor x = randn({m, k}, seed), w = randn({n, k}, seed + 1);
  Tensor b = bias ? randn({n}, seed + 2) : Tensor();
  Tensor ref = Tensor::empty({m, n});
  cpu_k().linear_forward(x, w, b, ref);
  Tensor y = poisoned({m, n});
  gpu_k().linear_forward(on_cuda(x), on_cuda(w), on_cuda(b), y);
  EXPECT_GEMM_CLOSE(y, ref, k);
}

// gx[m, k] = gy[m, n] w[n, k]: a sum over the n outputs.
void check_backward_data(int64_t m, int64_t k, int64_t n) {
  SCOPED_TRACE(label(m, k, n));
  const uint64_t seed = seed_of(m, k, n) + 10;
  Tensor gy = randn({m, n}, seed), w = randn({n, k}, seed + 1);
  Tensor ref = Tensor::empty({m, k});
  cpu_k().linear_backward_data(gy, w, ref);
  Tensor gx = poisoned({m, k});
  gpu_k().linear_backward_data(on_cuda(gy), on_cuda(w), gx);
  EXPECT_GEMM_CLOSE(gx, ref, n);
}

// gw[n, k] = gy[m, n]^T x[m, k] and gb[n] = sum_rows gy: sums over the m rows. want_gw / want_gb
// leave the other undefined, as the op does when only one is needed.
void check_backward_weight(int64_t m, int64_t k, int64_t n, bool want_gw, bool want_gb) {
  SCOPED_TRACE(label(m, k, n) + (want_gw ? ", gw" : "") + (want_gb ? ", gb" : ""));
  const uint64_t seed = seed_of(m, k, n) + 20;
  Tensor gy = randn({m, n}, seed), x = randn({m, k}, seed + 1);
  Tensor gw_ref = want_gw ? Tensor::empty({n, k}) : Tensor();
  Tensor gb_ref = want_gb ? Tensor::empty({n}) : Tensor();
  cpu_k().linear_backward_weight(gy, x, gw_ref, gb_ref);
  Tensor gw = want_gw ? poisoned({n, k}) : Tensor();
  Tensor gb = want_gb ? poisoned({n}) : Tensor();
  gpu_k().linear_backward_weight(on_cuda(gy), on_cuda(x), gw, gb);
  if (want_gw) {
    EXPECT_GEMM_CLOSE(gw, gw_ref, m);
  }
  if (want_gb) {
    EXPECT_CLOSE(gb, gb_ref, 0.0);
  }
}

const int64_t kRows[] = {1, 7, 64};
const int64_t kInner[] = {1, 33, 4097};
const int64_t kCols[] = {1, 6, 130};

TEST(CudaLinear, ForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t m : kRows)
    for (int64_t k : kInner)
      for (int64_t n : kCols)
        for (bool bias : {false, true}) check_forward(m, k, n, bias);
}

TEST(CudaLinear, BackwardDataMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t m : kRows)
    for (int64_t k : kInner)
      for (int64_t n : kCols) check_backward_data(m, k, n);
}

TEST(CudaLinear, BackwardWeightMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t m : kRows)
    for (int64_t k : kInner)
      for (int64_t n : kCols) check_backward_weight(m, k, n, true, true);
  // One of the two undefined: a frozen weight with a trainable bias, and a layer without bias.
  check_backward_weight(7, 33, 6, false, true);
  check_backward_weight(7, 33, 6, true, false);
}

// Few tiles of C and a long K: the split-K path with its reduction, then the same layers'
// backward products (long N, short K for gw).
TEST(CudaLinear, LongKSplitMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  struct Shape3 {
    int64_t m, k, n;
  };
  for (const Shape3 s : {Shape3{8, 65536, 6}, Shape3{64, 16384, 512}, Shape3{64, 65536, 256}}) {
    check_forward(s.m, s.k, s.n, true);
    check_backward_data(s.m, s.k, s.n);
    check_backward_weight(s.m, s.k, s.n, true, true);
  }
}

}  // namespace
}  // namespace engine
