// Native CUDA inverted dropout: element i is kept when philox::uniform(seed, offset, i) >= p and
// scaled by 1 / (1 - p); backward regenerates the mask from (seed, offset) instead of storing it.
// The generator is engine/philox.h, the same code the CPU runs, so the mask is bit-identical.
//
// Counter c = offset + i picks word c & 3 of Philox block c >> 2, so one thread per Philox block
// computes the block once and applies its four words to the (up to) four elements they cover:
// elements 4t - (offset & 3) .. +3 for the t-th block of the call. When offset is a multiple of 4
// and x, y are 16-byte aligned those four elements are one float4; otherwise (and for the first
// and last, partial blocks) they are four bounds-checked scalar accesses. Grid-stride over blocks.
//
// Cost per four elements: 20 wide multiplies and ~40 other integer ops (about 100 issue slots)
// against 32 bytes moved. For a [32, 64, 112, 112] activation (25.7M floats, 6.4M blocks) that is
// 205 MB, a 43 us ceiling at the H200's 4.8 TB/s, and ~0.65 G issue slots, ~20 us at the H200's
// full issue rate: memory-bound, but with less slack than a plain copy.
// Fraction of the ceiling reached: not yet measured on a GPU.
#include <cstdint>

#include "engine/philox.h"
#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

// out = keep ? in * scale : 0, written so that it is the CPU's expression exactly.
__device__ __forceinline__ float masked(float in, float u, float p, float scale) {
  return u >= p ? in * scale : 0.f;
}

// Thread t of the grid-stride loop handles Philox block first_block + t.
__global__ void dropout_kernel(const float* in, float* out, int64_t n, float p, float scale,
                               uint64_t seed, uint64_t offset, int64_t blocks, bool vector_ok) {
  const uint64_t first_block = offset >> 2;
  const int64_t lead = static_cast<int64_t>(offset & 3);  // counters of block 0 before element 0
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < blocks;
       t += int64_t{gridDim.x} * blockDim.x) {
    const philox::Words r = philox::block(seed, 0, first_block + static_cast<uint64_t>(t));
    const int64_t e0 = 4 * t - lead;  // element of word 0 (negative for a partial first block)
    if (vector_ok && e0 + 4 <= n) {
      // lead == 0 here, so e0 is a multiple of 4 and never negative.
      const float4 x = reinterpret_cast<const float4*>(in)[e0 >> 2];
      float4 y;
      y.x = masked(x.x, philox::to_uniform(r.w[0]), p, scale);
      y.y = masked(x.y, philox::to_uniform(r.w[1]), p, scale);
      y.z = masked(x.z, philox::to_uniform(r.w[2]), p, scale);
      y.w = masked(x.w, philox::to_uniform(r.w[3]), p, scale);
      reinterpret_cast<float4*>(out)[e0 >> 2] = y;
    } else {
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const int64_t e = e0 + w;
        if (e >= 0 && e < n) out[e] = masked(in[e], philox::to_uniform(r.w[w]), p, scale);
      }
    }
  }
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

void apply_mask(const float* in, float* out, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  const float scale = 1.f / (1.f - p);  // as the CPU: inf at p = 1, where nothing is kept
  // Blocks covering counters offset .. offset + n - 1.
  const uint64_t first = offset >> 2, last = (offset + static_cast<uint64_t>(n) - 1) >> 2;
  const int64_t blocks = static_cast<int64_t>(last - first + 1);
  const bool vector_ok = (offset & 3) == 0 && aligned16(in) && aligned16(out);
  dropout_kernel<<<grid_for(blocks), kBlock, 0, stream()>>>(in, out, n, p, scale, seed, offset,
                                                            blocks, vector_ok);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

// Forward on x, backward on gy: the same mask from the same (seed, offset).
void dropout(const Tensor& x, Tensor& y, float p, uint64_t seed, uint64_t offset) {
  apply_mask(fptr(x), fptr(y), x.numel(), p, seed, offset);
}

}  // namespace

void register_dropout(KernelTable& t) { t.dropout = dropout; }

}  // namespace engine::cuda
