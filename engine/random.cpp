// Philox4x32-10 as published: 10 rounds of multiply-xor with two 32-bit key words bumped by the
// Weyl constants after each round.
#include "engine/random.h"

#include <cmath>

namespace engine {
namespace {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}
}  // namespace

std::array<uint32_t, 4> Philox::block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += kW0, k1 += kW1;
  }
  return {c0, c1, c2, c3};
}

float Philox::uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  // One Philox block yields four numbers: element i uses word i%4 of block (offset + i) / 4...
  // but offsets need not be multiples of 4, so index the block by the absolute counter.
  uint64_t c = offset + i;
  auto b = block(seed, 0, c >> 2);
  // 24 random bits -> exactly representable float in [0, 1).
  return static_cast<float>(b[c & 3] >> 8) * (1.0f / 16777216.0f);
}

float Generator::uniform() { return Philox::uniform(seed_, reserve(1), 0); }

float Generator::normal() {
  float u1 = uniform(), u2 = uniform();
  // Shift u1 into (0, 1] so the log is finite.
  float r = std::sqrt(-2.0f * std::log(1.0f - u1));
  return r * std::cos(6.28318530717958647692f * u2);
}

uint64_t Generator::next_u64() {
  uint64_t c = reserve(4);
  auto b = Philox::block(seed_, 1, c >> 2);  // counter_hi=1: a stream apart from uniform()
  return (static_cast<uint64_t>(b[0]) << 32) | b[1];
}

uint64_t Generator::below(uint64_t n) {
  // Rejection sampling keeps the result exactly uniform.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace engine
