// Native CUDA element-wise kernels: fill, add, y += a*x, y *= s, each a Map op run by map_kernel
// (cuda_util.h: grid sized from the occupancy API, four independent float4 loads per input per
// thread per pass when every pointer is 16-byte aligned, a scalar tail, a scalar path when not
// aligned), and sum of squares (two-stage reduction in double: each block folds its grid-stride
// share, read as float4 where aligned, with warp shuffles, then one block folds the per-block
// partials in a fixed order, so the result does not depend on scheduling).
// Bytes moved per element, as bench_cuda_ops counts them: fill 4 (write y), add 12 (read a, b,
// write y), add_inplace 12 (read y, x, write y), scale_inplace 8 (read y, write y), sum_squares 4
// (read x). All memory-bound (at most 2 FLOPs per element). For a [64, 64, 112, 112] activation
// (51.4M floats) add moves 617 MB, a 128 us ceiling at the H200's 4.8 TB/s. Fraction of the copy
// bandwidth reached: not yet measured on a GPU.
#include <algorithm>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

struct Constant {
  float v;
  __device__ float operator()() const { return v; }
};
struct Plus {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Axpy {  // y + alpha * x
  float alpha;
  __device__ float operator()(float y, float x) const { return y + alpha * x; }
};
struct Times {
  float s;
  __device__ float operator()(float y) const { return y * s; }
};

template <class Op>
void launch(const Op& op, int64_t n) {
  if (n == 0) return;
  const bool vector = op.aligned();
  map_kernel<Op><<<map_grid<Op>(n, vector), kBlock, 0, stream()>>>(op, n, vector);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

__device__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block; the result is valid in thread 0. blockDim.x must be a multiple of 32.
__device__ double block_sum(double v) {
  __shared__ double warp_partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x >> 5) ? warp_partial[lane] : 0.0;
    v = warp_sum(v);
  }
  return v;
}

// Stage 1: partial[blockIdx.x] = sum of x[i]^2 over this block's grid-stride share, as float4
// units when `vector` (then the n % 4 tail goes to the first threads). A float squared is exact
// in double, so only the additions round, as in the CPU kernel.
__global__ void __launch_bounds__(kBlock)
    sum_squares_partial(const float* __restrict__ x, int64_t n, bool vector,
                        double* __restrict__ partial) {
  const int64_t tid = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  double s = 0;
  const int64_t quads = vector ? n / 4 : 0;
  for (int64_t q = tid; q < quads; q += stride) {
    const Chunk<4> c = load_chunk<4>(x, 4 * q);
#pragma unroll
    for (int k = 0; k < 4; ++k) s += static_cast<double>(c.v[k]) * c.v[k];
  }
  for (int64_t i = 4 * quads + tid; i < n; i += stride) s += static_cast<double>(x[i]) * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Stage 2: one block folds the m partials.
__global__ void sum_partials(const double* __restrict__ partial, int m, double* __restrict__ out) {
  double s = 0;
  for (int i = threadIdx.x; i < m; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

void fill(Tensor& y, float v) { launch(Map<0, false, Constant>{{}, fptr(y), {v}}, y.numel()); }

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  launch(Map<2, false, Plus>{{fptr(a), fptr(b)}, fptr(y), {}}, y.numel());
}

void add_inplace(Tensor& y, const Tensor& x, float alpha) {
  launch(Map<2, true, Axpy>{{fptr(x)}, fptr(y), {alpha}}, y.numel());
}

void scale_inplace(Tensor& y, float s) { launch(Map<1, true, Times>{{}, fptr(y), {s}}, y.numel()); }

double sum_squares(const Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return 0.0;
  const bool vector = aligned16(fptr(x));
  // At most 1024 blocks so that stage 2 is one pass of one block.
  constexpr int64_t kMaxPartials = 1024;
  const int blocks = static_cast<int>(std::min<int64_t>(
      device_grid<sum_squares_partial>(vector ? std::max<int64_t>(n / 4, 1) : n, kUnroll),
      kMaxPartials));
  Scratch scratch(sizeof(double) * (blocks + 1));
  double* partial = scratch.as<double>();
  sum_squares_partial<<<blocks, kBlock, 0, stream()>>>(fptr(x), n, vector, partial);
  ENGINE_CUDA_CHECK(cudaGetLastError());
  sum_partials<<<1, 1024, 0, stream()>>>(partial, blocks, partial + blocks);
  ENGINE_CUDA_CHECK(cudaGetLastError());
  double result = 0;
  ENGINE_CUDA_CHECK(
      cudaMemcpyAsync(&result, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream()));
  ENGINE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return result;
}

}  // namespace

void register_elementwise(KernelTable& t) {
  t.fill = fill;
  t.add = add;
  t.add_inplace = add_inplace;
  t.scale_inplace = scale_inplace;
  t.sum_squares = sum_squares;
}

}  // namespace engine::cuda
