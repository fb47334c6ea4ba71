// The cross-backend harness (tests/cuda/test_cuda_backends.cpp runs it): what the per-family case
// files in tests/cuda/slots/ share. Each file gives, for each slot of its family in
// engine/op_list.h, a check run on one CUDA backend against the CPU kernel:
//
//   ENGINE_SLOT_CHECK(conv2d_forward) { ...cases, each compared with EXPECT_MATCHES... }
//
// which registers itself for Slot::conv2d_forward; a slot of the list without one fails its test.
// Also the conv2d case and its three-pass check, which the tile-shape test reuses, and the pooling
// cases, which the max-pool tie and NaN tests reuse.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/cuda/cuda_testing.h"

namespace engine::testing {

using SlotCheck = void (*)(Backend);

// Records the check of slot s (at static initialization; a second check for one slot throws).
bool register_slot_check(Slot s, SlotCheck check);
// The check of slot s, or nullptr when no file gives one.
SlotCheck slot_check(Slot s);

#define ENGINE_SLOT_CHECK(slot)                                                    \
  void check_##slot(Backend b);                                                    \
  [[maybe_unused]] const bool registered_##slot =                                  \
      ::engine::testing::register_slot_check(::engine::Slot::slot, &check_##slot); \
  void check_##slot(Backend b)

inline const KernelTable& cpu() { return kernel_table(Backend::Cpu); }
inline bool cudnn(Backend b) { return b == Backend::Cudnn; }

// Fresh inputs: the salt makes every case's tensors different.
inline Tensor randn(const Shape& s, uint64_t salt, float mean = 0.f, float stddev = 1.f) {
  return fast_randn(s, salt * 7919 + 17, mean, stddev);
}
inline Tensor uniform(const Shape& s, uint64_t salt, float lo, float hi) {
  Generator gen(salt * 104729 + static_cast<uint64_t>(shape_numel(s)));
  return Tensor::rand(s, gen, lo, hi);
}
inline Tensor poisoned(const Shape& s) { return poisoned_cuda(s); }
// Optional outputs: undefined when not wanted.
inline Tensor empty_if(bool want, const Shape& s) { return want ? Tensor::empty(s) : Tensor(); }
inline Tensor poisoned_if(bool want, const Shape& s) { return want ? poisoned(s) : Tensor(); }

// Odd sizes on purpose: a single element, less than a warp, and a prime above one grid's worth.
inline const std::vector<int64_t>& sizes() { return test_sizes(); }

struct ConvCase {
  std::string name;
  int64_t n, cin, h, w, cout, kh, kw;
  Conv2dParams p;
};

Conv2dParams conv_params(int64_t stride, int64_t pad, int64_t dilation = 1, int64_t groups = 1);

// Forward (with bias), backward data and backward weight (gw and gb) of backend b against the
// CPU, with the harness's tolerances; fresh inputs from seed.
void check_conv2d_passes(Backend b, const ConvCase& c, uint64_t seed);

// The pooling cases of the harness (tests/cuda/slots/pool.cpp), which the max-pool tests of ties
// and NaNs reuse.
struct PoolCase {
  Shape x;
  Pool2dParams p;
};
const std::vector<PoolCase>& pool_cases();
Shape pool_out_shape(const PoolCase& c);
std::string pool_label(const PoolCase& c);

}  // namespace engine::testing
