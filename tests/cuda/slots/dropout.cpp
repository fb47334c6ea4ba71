// The cross-backend harness's cases for the dropout slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// dropout: bit for bit (both draw the mask from engine/philox.h and scale by the same float).
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

// Number of elements whose bits differ (a NaN left by an unwritten element counts).
int64_t bit_mismatches(const Tensor& ours, const Tensor& ref) {
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  if (a.size() != b.size()) return std::numeric_limits<int64_t>::max();
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return bad;
}

// Offsets cover a multiple of 4 (the float4 path), each other residue mod 4 (a partial first
// Philox block) and a counter above 2^32 (the high counter word).
ENGINE_SLOT_CHECK(dropout) {
  for (int64_t n : sizes()) {
    const Tensor in = randn({n}, 1 + n), in_d = on_cuda(in);
    for (float p : {0.1f, 0.5f, 0.9f}) {
      for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{1000},
                              (uint64_t{1} << 32) + 6}) {
        SCOPED_TRACE("p = " + std::to_string(p) + ", n = " + std::to_string(n) +
                     ", offset = " + std::to_string(offset));
        const uint64_t seed = 131 + static_cast<uint64_t>(n) + offset;
        Tensor ref = Tensor::empty({n});
        cpu().dropout(in, ref, p, seed, offset);
        Tensor out = poisoned({n});
        kernel_table(b).dropout(in_d, out, p, seed, offset);
        EXPECT_EQ(bit_mismatches(out, ref), 0);
      }
    }
  }
}

}  // namespace

}  // namespace engine::testing
