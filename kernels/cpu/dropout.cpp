// CPU inverted dropout. Element i is kept when Philox::uniform(seed, offset, i) >= p and scaled by
// 1 / (1 - p); backward regenerates the same mask from (seed, offset) instead of storing it.
// The cost is all in the random numbers: Philox4x32-10 is 20 32x32->64-bit multiplies per block
// of four numbers. Calling Philox::block per block is a chain of dependent scalar multiplies
// (about 14 ns per element on [8, 64, 64, 64], one thread); here kLanes consecutive blocks run
// side by side in lane arrays, which the compiler turns into vector multiplies, and the mask is
// applied in one vectorised pass per group: about 1.5 ns per element, near twice a memcpy.
// Parallel over groups of blocks; the mask depends only on the counter, never on threads.
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

constexpr int64_t kLanes = 64;  // blocks per group: 256 numbers, 2 KiB of stack

// The 4 * kLanes numbers of blocks first .. first + kLanes - 1 in counter order: bits[4 * l + w]
// is word w of Philox::block(seed, 0, first + l). The same rounds as engine/random.cpp, laid out
// across lanes; Dropout.MaskIsPhiloxOfSeedAndOffset holds the two to the same numbers.
void philox_group(uint64_t seed, uint64_t first, uint32_t (&bits)[4 * kLanes]) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    const uint64_t ctr = first + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(ctr), c1[l] = static_cast<uint32_t>(ctr >> 32);
    c2[l] = 0, c3[l] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kM0) * c0[l];
      const uint64_t p1 = static_cast<uint64_t>(kM1) * c2[l];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<uint32_t>(p1), c3[l] = static_cast<uint32_t>(p0);
      c0[l] = n0, c2[l] = n2;
    }
    k0 += kW0, k1 += kW1;
  }
  for (int64_t l = 0; l < kLanes; ++l) {
    bits[4 * l] = c0[l], bits[4 * l + 1] = c1[l], bits[4 * l + 2] = c2[l], bits[4 * l + 3] = c3[l];
  }
}

// out[i] = keep(i) ? in[i] / (1 - p) : 0, with keep(i) exactly as Philox::uniform defines it:
// counter c = offset + i picks word c & 3 of block c >> 2, whose top 24 bits give u in [0, 1).
void apply_mask(const float* in, float* out, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  const float scale = 1.f / (1.f - p);
  const uint64_t end = offset + static_cast<uint64_t>(n);
  const uint64_t first = offset >> 2;
  const int64_t blocks = static_cast<int64_t>(((end - 1) >> 2) - first + 1);
  const int64_t groups = (blocks + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const uint64_t b0 = first + static_cast<uint64_t>(gi * kLanes);
    uint32_t bits[4 * kLanes];
    philox_group(seed, b0, bits);
    // bits[j] is counter c0 + j; only the first and last groups can stick out of [offset, end).
    const uint64_t c0 = b0 * 4;
    if (c0 >= offset && c0 + 4 * kLanes <= end) {
      const float* x = in + (c0 - offset);
      float* y = out + (c0 - offset);
#pragma omp simd
      for (int64_t j = 0; j < 4 * kLanes; ++j) {
        const float u = static_cast<float>(bits[j] >> 8) * (1.0f / 16777216.0f);
        y[j] = u >= p ? x[j] * scale : 0.f;
      }
      continue;
    }
    for (int64_t j = 0; j < 4 * kLanes; ++j) {
      const uint64_t c = c0 + static_cast<uint64_t>(j);
      if (c < offset || c >= end) continue;
      const float u = static_cast<float>(bits[j] >> 8) * (1.0f / 16777216.0f);
      out[c - offset] = u >= p ? in[c - offset] * scale : 0.f;
    }
  }
}

// Forward on x, backward on gy: the same mask from the same (seed, offset).
void dropout(const Tensor& x, Tensor& y, float p, uint64_t seed, uint64_t offset) {
  apply_mask(fptr(x), fptr(y), x.numel(), p, seed, offset);
}

}  // namespace

void register_dropout(KernelTable& t) { t.dropout = dropout; }

}  // namespace engine::cpu
