// Helpers shared by the CPU kernels: raw pointers and a parallel-for that stays serial for small
// work (an OpenMP fork costs microseconds; a 64-element loop does not need it).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/op_table.h"
#include "engine/tensor.h"

namespace engine::cpu {

inline float* fptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Below this many elements a loop runs on one thread.
constexpr int64_t kParallelGrain = 32768;

// Scratch buffers reused across calls (one set per calling thread; the conv kernels use slots
// 0-2): a fresh 96 MB allocation per convolution would cost page faults on every step.
inline float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> bufs[4];
  auto& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(n);
  return b.data();
}

// One register_<family> per family of engine/op_list.h, defined in kernels/cpu/<family>.cpp.
#define ENGINE_FAMILY(family, native_col, cudnn_col) void register_##family(KernelTable& t);
#include "engine/op_list.h"

}  // namespace engine::cpu
