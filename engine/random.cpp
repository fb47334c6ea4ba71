// The Philox generator lives in engine/philox.h, shared with the CUDA kernels; this file wraps it
// in Philox's static functions and builds the Generator on top.
#include "engine/random.h"

#include <cmath>

#include "engine/philox.h"

namespace engine {

std::array<uint32_t, 4> Philox::block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  const philox::Words b = philox::block(seed, counter_hi, counter_lo);
  return {b.w[0], b.w[1], b.w[2], b.w[3]};
}

float Philox::uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return philox::uniform(seed, offset, i);
}

namespace {

// The normal drawn from counters `offset` and `offset + 1` of stream `seed`.
float normal_at(uint64_t seed, uint64_t offset) {
  const float u1 = philox::uniform(seed, offset, 0), u2 = philox::uniform(seed, offset + 1, 0);
  // Shift u1 into (0, 1] so the log is finite.
  const float r = std::sqrt(-2.0f * std::log(1.0f - u1));
  return r * std::cos(6.28318530717958647692f * u2);
}

// Below this many draws a parallel region costs more than it saves.
[[maybe_unused]] constexpr int64_t kParallelDraws = int64_t(1) << 15;  // unused without OpenMP

}  // namespace

float Generator::uniform() { return Philox::uniform(seed_, reserve(1), 0); }

float Generator::normal() { return normal_at(seed_, reserve(2)); }

void Generator::fill_uniform(float* out, int64_t n) {
  const uint64_t base = reserve(uint64_t(n)), seed = seed_;
#pragma omp parallel for schedule(static) if (n >= kParallelDraws)
  for (int64_t i = 0; i < n; ++i) out[i] = philox::uniform(seed, base + uint64_t(i), 0);
}

void Generator::fill_normal(float* out, int64_t n) {
  const uint64_t base = reserve(2 * uint64_t(n)), seed = seed_;
#pragma omp parallel for schedule(static) if (n >= kParallelDraws)
  for (int64_t i = 0; i < n; ++i) out[i] = normal_at(seed, base + 2 * uint64_t(i));
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
