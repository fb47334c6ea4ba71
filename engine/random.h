// Seedable, counter-based random numbers (Philox4x32-10, Salmon et al. 2011). Element i of a
// stream depends only on (seed, offset, i), never on thread count or call order inside an op, so
// CPU threads and CUDA kernels can draw the same numbers and a dropout mask can be regenerated in
// backward instead of stored.
#pragma once
#include <array>
#include <cstdint>

namespace engine {

struct Philox {
  static std::array<uint32_t, 4> block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo);
  // Uniform float in [0, 1) for element `i` of stream (seed, offset).
  static float uniform(uint64_t seed, uint64_t offset, uint64_t i);
};

// A generator is a seed and a running offset: each draw of n numbers advances the offset by n,
// so a sequence of ops is reproducible from the seed alone. Its state is two integers, which is
// what a checkpoint saves.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed, offset_ = offset; }
  // Reserves n consecutive counters and returns the first.
  uint64_t reserve(uint64_t n) {
    uint64_t o = offset_;
    offset_ += n;
    return o;
  }
  float uniform();  // [0, 1)
  float normal();   // standard normal (Box-Muller on two uniforms)
  // n draws at once, bit-identical to n successive uniform() / normal() calls (element i depends
  // on its counter alone), computed by all threads: initialising 33M parameters takes a fraction
  // of the one-at-a-time loop's seconds.
  void fill_uniform(float* out, int64_t n);
  void fill_normal(float* out, int64_t n);
  uint64_t next_u64();         // for shuffles
  uint64_t below(uint64_t n);  // uniform integer in [0, n)

 private:
  uint64_t seed_ = 0, offset_ = 0;
};

// The process-wide generator used when a caller passes none (manual_seed sets it).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace engine
