// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), header
// only so that the CPU (engine/random.cpp) and CUDA kernels (kernels/cuda/dropout.cu) compile the
// one implementation: a dropout mask drawn on either device is bit-identical. Under nvcc the
// functions are __host__ __device__; elsewhere they are plain inline functions.
//
// One call maps a 128-bit counter and a 64-bit key (the seed) to four 32-bit words. Streams of
// floats use counter c = offset + i for element i: word c & 3 of the block at counter c >> 2, so
// four consecutive elements share one block and an offset need not be a multiple of 4.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define ENGINE_HD __host__ __device__
#else
#define ENGINE_HD
#endif

namespace engine::philox {

struct Words {
  uint32_t w[4];
};

// The high and low halves of the 64-bit product a * b. On the GPU the two halves are two 32-bit
// multiplies (mul.hi.u32, mul.lo.u32); written as a 64-bit product, nvcc keeps the whole round in
// 64-bit registers. Both forms are the exact product, so the numbers are the same.
inline ENGINE_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  hi = __umulhi(a, b);
  lo = a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
#endif
}

// Ten rounds of multiply-xor over (c0, c1, c2, c3) with the key (k0, k1) bumped by the Weyl
// constants after each round.
inline ENGINE_HD Words block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Words{{c0, c1, c2, c3}};
}

// The top 24 bits of a word as a float in [0, 1): every value is exact, so the conversion is the
// same on every device and under every rounding mode.
inline ENGINE_HD float to_uniform(uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// Element i of stream (seed, offset): word c & 3 of block c >> 2, c = offset + i.
inline ENGINE_HD float uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  const uint64_t c = offset + i;
  return to_uniform(block(seed, 0, c >> 2).w[c & 3]);
}

}  // namespace engine::philox
