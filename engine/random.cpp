// The Philox generator lives in engine/philox.h, shared with the CUDA kernels; this file wraps it
// in Philox's static functions and builds the Generator on top.
#include "engine/random.h"

#include <cmath>

#ifdef _OPENMP
#include <omp.h>
#endif

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

// A normal from two uniforms in [0, 1) (Box-Muller, cosine branch).
float box_muller(float u1, float u2) {
  // Shift u1 into (0, 1] so the log is finite.
  const float r = std::sqrt(-2.0f * std::log(1.0f - u1));
  return r * std::cos(6.28318530717958647692f * u2);
}

// The normal drawn from counters `offset` and `offset + 1` of stream `seed`.
float normal_at(uint64_t seed, uint64_t offset) {
  return box_muller(philox::uniform(seed, offset, 0), philox::uniform(seed, offset + 1, 0));
}

// Below this many draws a parallel region costs more than it saves.
[[maybe_unused]] constexpr int64_t kParallelDraws = int64_t(1) << 15;  // unused without OpenMP

// Word c & 3 of block c >> 2 of stream `seed` (what philox::uniform reads for counter c), each
// block computed once for its four words rather than once per word: a run of counters costs a
// quarter of the Philox work, and the words are the same.
class Words {
 public:
  explicit Words(uint64_t seed) : seed_(seed) {}
  uint32_t operator()(uint64_t c) {
    if ((c >> 2) != index_) {
      index_ = c >> 2;
      block_ = philox::block(seed_, 0, index_);
    }
    return block_.w[c & 3];
  }

 private:
  uint64_t seed_, index_ = UINT64_MAX;
  philox::Words block_{};
};

// Calls f(i) for i in [0, n), in one contiguous range per thread (so that a thread's counters
// run on and its Words reuses each block).
template <typename F>
void for_ranges(int64_t n, F f) {
#pragma omp parallel if (n >= kParallelDraws)
  {
    int64_t lo = 0, hi = n;
#ifdef _OPENMP
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    lo = n * t / nt, hi = n * (t + 1) / nt;
#endif
    f(lo, hi);
  }
}

}  // namespace

float Generator::uniform() { return Philox::uniform(seed_, reserve(1), 0); }

float Generator::normal() { return normal_at(seed_, reserve(2)); }

void Generator::fill_uniform(float* out, int64_t n) {
  const uint64_t base = reserve(uint64_t(n)), seed = seed_;
  for_ranges(n, [&](int64_t lo, int64_t hi) {
    Words word(seed);
    for (int64_t i = lo; i < hi; ++i) out[i] = philox::to_uniform(word(base + uint64_t(i)));
  });
}

void Generator::fill_normal(float* out, int64_t n) {
  const uint64_t base = reserve(2 * uint64_t(n)), seed = seed_;
  for_ranges(n, [&](int64_t lo, int64_t hi) {
    Words word(seed);
    for (int64_t i = lo; i < hi; ++i) {
      const uint64_t c = base + 2 * uint64_t(i);
      const float u1 = philox::to_uniform(word(c));
      out[i] = box_muller(u1, philox::to_uniform(word(c + 1)));
    }
  });
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
