// The cross-backend harness (ggml's test-backend-ops): every slot of engine/op_list.h on every CUDA
// backend (native; cudnn where built) against the CPU kernel, one test per backend and slot,
// e.g. Native/CudaSlot.MatchesCpu/conv2d_forward. The test list is made from the op list; each
// slot's cases and tolerance, with its reason, are in tests/cuda/slots/<family>.cpp, and a slot
// without them fails, so a new slot cannot go untested.
// A slot the backend leaves empty fails, unless engine/op_list.h says it is meant to be missing
// (then the test reports itself skipped, saying so); this runs without a GPU too. Without a GPU
// every other test skips with the reason.
//
// Every case uses fresh random inputs (a seed per case, never zeros) and NaN-poisoned outputs
// (indices: -7), so an element a kernel leaves unwritten fails. Comparisons are element-wise
// (EXPECT_MATCHES, tests/cuda/cuda_testing.h: |ours - ref| <= atol * max|ref| + rtol * |ref|, a NaN
// on either side fails). Sizes: odd ones (1, fewer than a warp, primes, no multiple of any tile),
// the study's and the transfer models' layer shapes, and large ones that make the grid-stride
// loops go round; the emulated tier (tests/cuda_emu) runs the same cases.
//
// Tolerances are {rtol, atol} pairs (cuda_testing.h's Tol). Each implies the norm-wise bound the
// per-op test files this harness replaced held (rtol + atol never exceeds it), so no comparison got
// looser; where rtol carries part of the bound a small element wrong by more than its own rounding
// now fails too.
#include <ostream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "tests/cuda/backend_harness.h"

namespace engine {
// Readable parameters in test output and ctest's names ("native, conv2d_forward").
void PrintTo(Backend b, std::ostream* os) { *os << backend_name(b); }
void PrintTo(Slot s, std::ostream* os) { *os << slot_name(s); }
}  // namespace engine

namespace engine::testing {

SlotCheck* checks() {
  static SlotCheck table[kNumSlots] = {};
  return table;
}

bool register_slot_check(Slot s, SlotCheck check) {
  SlotCheck& entry = checks()[static_cast<int>(s)];
  if (entry != nullptr) {
    throw std::logic_error(std::string("two ENGINE_SLOT_CHECK for slot ") + slot_name(s));
  }
  entry = check;
  return true;
}

SlotCheck slot_check(Slot s) { return checks()[static_cast<int>(s)]; }

namespace {

void run_slot(Backend b, Slot s) {
  // None of this needs a device: a slot left empty or without cases fails with or without a GPU.
  const SlotCheck check = slot_check(s);
  ASSERT_NE(check, nullptr) << slot_name(s) << " has no ENGINE_SLOT_CHECK: give its cases in "
                            << "tests/cuda/slots/" << slot_family(s) << ".cpp";
  if (!supports(b, s)) {
    if (slot_expected_missing(b, s)) {
      GTEST_SKIP() << slot_name(s) << ": engine/op_list.h marks it missing on backend "
                   << backend_name(b);
    }
    FAIL() << slot_name(s) << ": backend " << backend_name(b)
           << " has no kernel, and engine/op_list.h does not say it is missing";
  }
  EXPECT_FALSE(slot_expected_missing(b, s))
      << slot_name(s) << ": backend " << backend_name(b)
      << " has a kernel that engine/op_list.h says is missing; update the list";
  ENGINE_REQUIRE_CUDA();
  check(b);
}

class CudaSlot : public ::testing::TestWithParam<std::tuple<Backend, Slot>> {};

TEST_P(CudaSlot, MatchesCpu) { run_slot(std::get<0>(GetParam()), std::get<1>(GetParam())); }

std::vector<Slot> all_slots() {
  std::vector<Slot> v;
  for (int i = 0; i < kNumSlots; ++i) v.push_back(static_cast<Slot>(i));
  return v;
}

// Native/CudaSlot.MatchesCpu/conv2d_forward: the instantiation names the backend.
std::string slot_param_name(const ::testing::TestParamInfo<std::tuple<Backend, Slot>>& info) {
  return slot_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Native, CudaSlot,
                         ::testing::Combine(::testing::Values(Backend::Native),
                                            ::testing::ValuesIn(all_slots())),
                         slot_param_name);
#ifdef ENGINE_HAVE_CUDNN
INSTANTIATE_TEST_SUITE_P(Cudnn, CudaSlot,
                         ::testing::Combine(::testing::Values(Backend::Cudnn),
                                            ::testing::ValuesIn(all_slots())),
                         slot_param_name);
#elif !defined(ENGINE_CUDA_EMU)  // the emulated tier has no cuDNN to test
TEST(CudnnSlots, MatchCpu) { GTEST_SKIP() << "built without cuDNN (ENGINE_HAVE_CUDNN is not set)"; }
#endif

}  // namespace
}  // namespace engine::testing
