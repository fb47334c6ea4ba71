// Native CUDA inverted dropout: element i is kept when philox::uniform(seed, offset, i) >= p and
// scaled by 1 / (1 - p); backward regenerates the mask from (seed, offset) instead of storing it.
// The generator is engine/philox.h, the same code the CPU runs, so the mask is bit-identical.
//
// Counter c = offset + i picks word c & 3 of Philox block c >> 2, so each thread computes a
// Philox block once and applies its four words to the (up to) four elements they cover: elements
// 4t - (offset & 3) .. +3 for the t-th block of the call. When offset is a multiple of 4 and x, y
// are 16-byte aligned those four elements are one float4; otherwise (and for the first and last,
// partial blocks) they are four bounds-checked scalar accesses. Grid-stride over blocks, the grid
// sized from the occupancy API; per pass a thread first loads the inputs of kUnroll blocks (four
// independent 16-byte loads in flight) and then generates and stores them.
//
// Bytes moved per element, as bench_cuda_ops counts them: 8 (read x, write y; backward reads gy,
// writes gx). Per four elements, 20 wide multiplies and ~40 other integer ops (about 100 issue
// slots) against 32 bytes. For a [64, 64, 112, 112] activation (51.4M floats, 12.8M blocks) that
// is 411 MB, an 86 us ceiling at the H200's 4.8 TB/s, and ~1.3 G issue slots, ~40 us at the H200's
// full issue rate: memory-bound, but with less slack than a plain copy.
// Fraction of the copy bandwidth reached: not yet measured on a GPU.
#include <cstdint>

#include "engine/philox.h"
#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

// out = keep ? in * scale : 0, written so that it is the CPU's expression exactly.
__device__ __forceinline__ float masked(float in, float u, float p, float scale) {
  return u >= p ? in * scale : 0.f;
}

// The (up to) four elements e0 .. e0 + 3 of one Philox block: one float4 when `whole` (all four
// inside [0, n) and 16-byte aligned), else the ones inside [0, n) one by one.
__device__ __forceinline__ Chunk<4> load_block(const float* __restrict__ in, int64_t e0, int64_t n,
                                               bool whole) {
  if (whole) return load_chunk<4>(in, e0);
  Chunk<4> c{};
#pragma unroll
  for (int w = 0; w < 4; ++w)
    if (e0 + w >= 0 && e0 + w < n) c.v[w] = in[e0 + w];
  return c;
}

__device__ __forceinline__ void store_block(float* __restrict__ out, int64_t e0, int64_t n,
                                            bool whole, const Chunk<4>& c) {
  if (whole) return store_chunk<4>(out, e0, c);
#pragma unroll
  for (int w = 0; w < 4; ++w)
    if (e0 + w >= 0 && e0 + w < n) out[e0 + w] = c.v[w];
}

// Thread t of the grid-stride loop handles Philox blocks first_block + t, + stride, ...
__global__ void __launch_bounds__(kBlock)
    dropout_kernel(const float* __restrict__ in, float* __restrict__ out, int64_t n, float p,
                   float scale, uint64_t seed, uint64_t offset, int64_t blocks, bool vector) {
  const uint64_t first_block = offset >> 2;
  const int64_t lead = static_cast<int64_t>(offset & 3);  // counters of block 0 before element 0
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t t0 = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t0 < blocks;
       t0 += kUnroll * stride) {
    Chunk<4> x[kUnroll];
#pragma unroll
    for (int r = 0; r < kUnroll; ++r) {
      const int64_t t = t0 + r * stride, e0 = 4 * t - lead;  // e0 < 0 for a partial first block
      if (t < blocks) x[r] = load_block(in, e0, n, vector && e0 + 4 <= n);
    }
#pragma unroll
    for (int r = 0; r < kUnroll; ++r) {
      const int64_t t = t0 + r * stride, e0 = 4 * t - lead;
      if (t >= blocks) continue;
      const philox::Words words = philox::block(seed, 0, first_block + static_cast<uint64_t>(t));
      Chunk<4> y;
#pragma unroll
      for (int w = 0; w < 4; ++w)
        y.v[w] = masked(x[r].v[w], philox::to_uniform(words.w[w]), p, scale);
      store_block(out, e0, n, vector && e0 + 4 <= n, y);
    }
  }
}

void apply_mask(const float* in, float* out, int64_t n, float p, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  const float scale = 1.f / (1.f - p);  // as the CPU: inf at p = 1, where nothing is kept
  // Blocks covering counters offset .. offset + n - 1.
  const uint64_t first = offset >> 2, last = (offset + static_cast<uint64_t>(n) - 1) >> 2;
  const int64_t blocks = static_cast<int64_t>(last - first + 1);
  const bool vector = (offset & 3) == 0 && aligned16(in) && aligned16(out);
  dropout_kernel<<<device_grid<dropout_kernel>(blocks, kUnroll), kBlock, 0, stream()>>>(
      in, out, n, p, scale, seed, offset, blocks, vector);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

// Forward on x, backward on gy: the same mask from the same (seed, offset).
void dropout(const Tensor& x, Tensor& y, float p, uint64_t seed, uint64_t offset) {
  apply_mask(fptr(x), fptr(y), x.numel(), p, seed, offset);
}

}  // namespace

void register_dropout(KernelTable& t) { t.dropout = dropout; }

}  // namespace engine::cuda
