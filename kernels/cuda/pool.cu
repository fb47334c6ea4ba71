// Native CUDA pooling over NCHW planes: max, average and adaptive average, forward and backward.
// Forward: one thread per output, scanning its window in row-major order as the CPU kernel does
// (kernels/cpu/pool.cpp), so ties, NaNs and the order of additions are the same and the results
// match it bit for bit. Global average pooling (adaptive to 1x1, the head of ResNet and
// MobileNetV2) instead gives each (n, c) plane to one warp: lanes sum strided elements and a
// shuffle tree folds them (a different order than the CPU's vectorised sum: ~1e-7 relative).
// Backward: one thread per input element gathers from the outputs whose windows contain it, in
// the order in which the CPU scatter adds to that element (so again bit for bit): no atomics and
// no zero-fill pass, and every element of gx is written. For max pooling the gather adds the
// outputs whose saved index points at the element.
// All memory-bound. ResNet's stem pool, 3x3/2 pad 1 on [32, 64, 112, 112] (103 MB in): forward
// reads x (each element by ~2.25 windows, mostly from cache) and writes 26 MB of y plus 51 MB of
// int64 indices, ~180 MB in all, a 38 us ceiling at the H200's 4.8 TB/s; backward reads 77 MB and
// writes 103 MB. Fraction of the ceiling reached: not yet measured on a GPU.
#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

// Sizes of one pooling call. In-plane coordinates are int (the launchers check that a plane
// fits); plane offsets are int64.
struct PoolShape {
  int64_t planes;  // N * C
  int h, w, oh, ow;
};

struct Window2d {
  int kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

// The extent of a window along one axis: [begin, end) clipped to the input, and count, the
// divisor of average pooling (with count_include_pad the window clipped to [-pad, in + pad)
// only, else the real elements). Identical to pool_spans in kernels/cpu/pool.cpp.
struct Span {
  int begin, end, count;
};

__device__ Span pool_span(int o, int in, int kernel, int stride, int pad, bool include_pad) {
  const int a = o * stride - pad, b = min(a + kernel, in + pad);
  const int begin = max(a, 0), end = min(b, in);
  return {begin, end, include_pad ? b - a : end - begin};
}

// PyTorch's adaptive bins: output o covers [floor(o * in / out), ceil((o + 1) * in / out)).
__device__ Span adaptive_span(int o, int in, int out) {
  const int begin = static_cast<int>(int64_t{o} * in / out);
  const int end = static_cast<int>((int64_t{o + 1} * in + out - 1) / out);
  return {begin, end, end - begin};
}

// The outputs [lo, hi] (inclusive; empty when lo > hi) whose window [o * stride - pad,
// o * stride - pad + kernel) contains input i: o * stride <= i + pad < o * stride + kernel.
struct Range {
  int lo, hi;
};

__device__ Range covering_windows(int i, int kernel, int stride, int pad, int out) {
  const int t = i + pad - kernel + 1;  // the first o has o * stride >= t
  return {t <= 0 ? 0 : (t + stride - 1) / stride, min((i + pad) / stride, out - 1)};
}

// The adaptive bins containing input i: start(o) <= i gives o <= ((i + 1) * out - 1) / in, and
// end(o) > i gives o >= i * out / in (both floors; the bins cover every input, so the range is
// never empty).
__device__ Range covering_bins(int i, int in, int out) {
  return {static_cast<int>(int64_t{i} * out / in),
          static_cast<int>((int64_t{i + 1} * out - 1) / in)};
}

// The (plane, y, x) coordinates of flat element i of [planes, rows, cols].
struct PlanePos {
  int64_t plane;
  int y, x;
};

__device__ PlanePos plane_pos(int64_t i, int rows, int cols) {
  const int64_t area = int64_t{rows} * cols;
  const int64_t plane = i / area;
  const int p = static_cast<int>(i - plane * area);
  return {plane, p / cols, p % cols};
}

#define GRID_STRIDE_LOOP(i, n)                                              \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

// A later element replaces the maximum when it is greater or NaN, so the first maximum in
// row-major window order wins and NaNs propagate (the last NaN's index is kept, as on the CPU).
// The index starts at the window's first element, which an all -inf window keeps.
__global__ void max_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        int64_t* __restrict__ indices, PoolShape s, Window2d k) {
  GRID_STRIDE_LOOP(i, s.planes * s.oh * s.ow) {
    const PlanePos o = plane_pos(i, s.oh, s.ow);
    const Span r = pool_span(o.y, s.h, k.kh, k.sh, k.ph, true);
    const Span c = pool_span(o.x, s.w, k.kw, k.sw, k.pw, true);
    const float* xp = x + o.plane * s.h * s.w;
    float best = -INFINITY;
    int arg = r.begin * s.w + c.begin;
    for (int iy = r.begin; iy < r.end; ++iy)
      for (int ix = c.begin; ix < c.end; ++ix) {
        const float v = xp[iy * s.w + ix];
        if (v > best || isnan(v)) {
          best = v;
          arg = iy * s.w + ix;
        }
      }
    y[i] = best;
    indices[i] = arg;
  }
}

// gx at (iy, ix) = the sum of gy over the outputs whose index is iy * W + ix, in row-major
// output order: the order in which the CPU's scatter adds them, starting from zero.
__global__ void max_pool_backward_kernel(const float* __restrict__ gy,
                                         const int64_t* __restrict__ indices,
                                         float* __restrict__ gx, PoolShape s, Window2d k) {
  GRID_STRIDE_LOOP(i, s.planes * s.h * s.w) {
    const PlanePos p = plane_pos(i, s.h, s.w);
    const Range ry = covering_windows(p.y, k.kh, k.sh, k.ph, s.oh);
    const Range rx = covering_windows(p.x, k.kw, k.sw, k.pw, s.ow);
    const int64_t self = int64_t{p.y} * s.w + p.x;
    const int64_t base = p.plane * s.oh * s.ow;
    float sum = 0.f;
    for (int oy = ry.lo; oy <= ry.hi; ++oy)
      for (int ox = rx.lo; ox <= rx.hi; ++ox) {
        const int64_t o = base + int64_t{oy} * s.ow + ox;
        if (indices[o] == self) sum += gy[o];
      }
    gx[i] = sum;
  }
}

__global__ void avg_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        PoolShape s, Window2d k) {
  GRID_STRIDE_LOOP(i, s.planes * s.oh * s.ow) {
    const PlanePos o = plane_pos(i, s.oh, s.ow);
    const Span r = pool_span(o.y, s.h, k.kh, k.sh, k.ph, k.count_include_pad);
    const Span c = pool_span(o.x, s.w, k.kw, k.sw, k.pw, k.count_include_pad);
    const float* xp = x + o.plane * s.h * s.w;
    float sum = 0.f;
    for (int iy = r.begin; iy < r.end; ++iy)
      for (int ix = c.begin; ix < c.end; ++ix) sum += xp[iy * s.w + ix];
    y[i] = sum / (static_cast<float>(r.count) * static_cast<float>(c.count));
  }
}

// gx at (iy, ix) = sum of gy / divisor over the windows containing it. The CPU scatters rows of
// windows in ascending oy and, within a row, by column tap (ascending dx, so descending ox for a
// fixed input column): the loops below add in that same order.
__global__ void avg_pool_backward_kernel(const float* __restrict__ gy, float* __restrict__ gx,
                                         PoolShape s, Window2d k) {
  GRID_STRIDE_LOOP(i, s.planes * s.h * s.w) {
    const PlanePos p = plane_pos(i, s.h, s.w);
    const Range ry = covering_windows(p.y, k.kh, k.sh, k.ph, s.oh);
    const Range rx = covering_windows(p.x, k.kw, k.sw, k.pw, s.ow);
    const float* g = gy + p.plane * s.oh * s.ow;
    float sum = 0.f;
    for (int oy = ry.lo; oy <= ry.hi; ++oy) {
      const float rc =
          static_cast<float>(pool_span(oy, s.h, k.kh, k.sh, k.ph, k.count_include_pad).count);
      for (int ox = rx.hi; ox >= rx.lo; --ox) {
        const float cc =
            static_cast<float>(pool_span(ox, s.w, k.kw, k.sw, k.pw, k.count_include_pad).count);
        sum += g[oy * s.ow + ox] / (rc * cc);
      }
    }
    gx[i] = sum;
  }
}

__global__ void adaptive_avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                            PoolShape s) {
  GRID_STRIDE_LOOP(i, s.planes * s.oh * s.ow) {
    const PlanePos o = plane_pos(i, s.oh, s.ow);
    const Span r = adaptive_span(o.y, s.h, s.oh), c = adaptive_span(o.x, s.w, s.ow);
    const float* xp = x + o.plane * s.h * s.w;
    float sum = 0.f;
    for (int iy = r.begin; iy < r.end; ++iy)
      for (int ix = c.begin; ix < c.end; ++ix) sum += xp[iy * s.w + ix];
    y[i] = sum / static_cast<float>(int64_t{r.count} * c.count);
  }
}

constexpr int kWarpsPerBlock = kBlock / 32;

// y[plane] = mean of the plane, one warp per plane: coalesced strided reads, then a butterfly.
__global__ void global_avg_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                          int64_t planes, int area) {
  const int lane = threadIdx.x % 32;
  for (int64_t plane = blockIdx.x * int64_t{kWarpsPerBlock} + threadIdx.x / 32; plane < planes;
       plane += int64_t{gridDim.x} * kWarpsPerBlock) {
    const float* xp = x + plane * area;
    float sum = 0.f;
    for (int j = lane; j < area; j += 32) sum += xp[j];
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) y[plane] = sum / static_cast<float>(area);
  }
}

// gx at (iy, ix) = sum of gy / bin area over the bins containing it, ascending oy then ox (the
// CPU's scatter order). Bins overlap when the output does not divide the input.
__global__ void adaptive_avg_backward_kernel(const float* __restrict__ gy, float* __restrict__ gx,
                                             PoolShape s) {
  GRID_STRIDE_LOOP(i, s.planes * s.h * s.w) {
    const PlanePos p = plane_pos(i, s.h, s.w);
    const Range ry = covering_bins(p.y, s.h, s.oh), rx = covering_bins(p.x, s.w, s.ow);
    const float* g = gy + p.plane * s.oh * s.ow;
    float sum = 0.f;
    for (int oy = ry.lo; oy <= ry.hi; ++oy) {
      const int rc = adaptive_span(oy, s.h, s.oh).count;
      for (int ox = rx.lo; ox <= rx.hi; ++ox)
        sum += g[oy * s.ow + ox] /
               static_cast<float>(int64_t{rc} * adaptive_span(ox, s.w, s.ow).count);
    }
    gx[i] = sum;
  }
}

#undef GRID_STRIDE_LOOP

// in: [N, C, H, W], out: [N, C, oh, ow] (either direction's tensors).
PoolShape pool_shape(const Tensor& in, const Tensor& out) {
  const int64_t h = in.size(2), w = in.size(3), oh = out.size(2), ow = out.size(3);
  ENGINE_CHECK(h * w <= INT_MAX && oh * ow <= INT_MAX, "pool2d (CUDA): planes of ", h, "x", w,
               " (output ", oh, "x", ow, ") exceed the kernels' 32-bit in-plane indexing");
  return {in.size(0) * in.size(1), static_cast<int>(h), static_cast<int>(w), static_cast<int>(oh),
          static_cast<int>(ow)};
}

Window2d window_of(const Pool2dParams& p) {
  return {static_cast<int>(p.kernel_h), static_cast<int>(p.kernel_w), static_cast<int>(p.stride_h),
          static_cast<int>(p.stride_w), static_cast<int>(p.pad_h),    static_cast<int>(p.pad_w),
          p.count_include_pad};
}

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p) {
  const int64_t n = y.numel();
  if (n == 0) return;
  max_pool_forward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(
      fptr(x), fptr(y), indices.data<int64_t>(), pool_shape(x, y), window_of(p));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, Tensor& gx,
                         const Pool2dParams& p) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  max_pool_backward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(
      fptr(gy), indices.data<int64_t>(), fptr(gx), pool_shape(gx, gy), window_of(p));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  const int64_t n = y.numel();
  if (n == 0) return;
  avg_pool_forward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(x), fptr(y), pool_shape(x, y),
                                                                window_of(p));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void avg_pool2d_backward(const Tensor& gy, Tensor& gx, const Pool2dParams& p) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  avg_pool_backward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(gy), fptr(gx),
                                                                 pool_shape(gx, gy), window_of(p));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void adaptive_avg_pool2d_forward(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  if (n == 0) return;
  const PoolShape s = pool_shape(x, y);
  if (s.oh == 1 && s.ow == 1) {
    const int64_t blocks = (s.planes + kWarpsPerBlock - 1) / kWarpsPerBlock;
    global_avg_forward_kernel<<<static_cast<unsigned>(std::min(blocks, kMaxBlocks)), kBlock, 0,
                                stream()>>>(fptr(x), fptr(y), s.planes, s.h * s.w);
  } else {
    adaptive_avg_forward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(x), fptr(y), s);
  }
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void adaptive_avg_pool2d_backward(const Tensor& gy, Tensor& gx) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  adaptive_avg_backward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(fptr(gy), fptr(gx),
                                                                     pool_shape(gx, gy));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void register_pool(KernelTable& t) {
  t.max_pool2d_forward = max_pool2d_forward;
  t.max_pool2d_backward = max_pool2d_backward;
  t.avg_pool2d_forward = avg_pool2d_forward;
  t.avg_pool2d_backward = avg_pool2d_backward;
  t.adaptive_avg_pool2d_forward = adaptive_avg_pool2d_forward;
  t.adaptive_avg_pool2d_backward = adaptive_avg_pool2d_backward;
}

}  // namespace engine::cuda
