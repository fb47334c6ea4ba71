// Native CUDA element-wise kernels: fill, add, y += a*x, y *= s (grid-stride loops, one element per
// thread per step) and sum of squares (two-stage reduction in double: each block folds its
// grid-stride share with warp shuffles, then one block folds the per-block partials, so the result
// does not depend on scheduling). All memory-bound. For a [32, 64, 112, 112] activation (25.7M
// floats): add moves 308 MB for 25.7M FLOPs, add_inplace 308 MB / 51M FLOPs, scale_inplace and
// fill 205 / 103 MB, sum_squares 103 MB / 51M FLOPs; at the H200's 4.8 TB/s that is a 64 us
// ceiling for add. Fraction of the ceiling reached: not yet measured on a GPU.
#include <algorithm>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

__global__ void fill_kernel(float* y, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = v;
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = a[i] + b[i];
}

__global__ void axpy_kernel(float* y, const float* x, float alpha, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += alpha * x[i];
}

__global__ void scale_kernel(float* y, float s, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] *= s;
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

// Stage 1: partial[blockIdx.x] = sum of x[i]^2 over this block's grid-stride share. A float
// squared is exact in double, so only the additions round, as in the CPU kernel.
__global__ void sum_squares_partial(const float* x, int64_t n, double* partial) {
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const double v = x[i];
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Stage 2: one block folds the m partials.
__global__ void sum_partials(const double* partial, int m, double* out) {
  double s = 0;
  for (int i = threadIdx.x; i < m; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

void fill(Tensor& y, float v) {
  const int64_t n = y.numel();
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(y), n, v);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  const int64_t n = y.numel();
  if (n == 0) return;
  add_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(a), fptr(b), fptr(y), n);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void add_inplace(Tensor& y, const Tensor& x, float alpha) {
  const int64_t n = y.numel();
  if (n == 0) return;
  axpy_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(y), fptr(x), alpha, n);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void scale_inplace(Tensor& y, float s) {
  const int64_t n = y.numel();
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(y), s, n);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

double sum_squares(const Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return 0.0;
  // At most 1024 blocks so that stage 2 is one pass of one block.
  constexpr int64_t kMaxPartials = 1024;
  const int blocks = static_cast<int>(std::min<int64_t>(grid_for(n), kMaxPartials));
  Scratch scratch(sizeof(double) * (blocks + 1));
  double* partial = scratch.as<double>();
  sum_squares_partial<<<blocks, kBlock, 0, stream()>>>(fptr(x), n, partial);
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
