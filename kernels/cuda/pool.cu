// Native CUDA pooling over NCHW planes: max, average and adaptive average, forward and backward.
// Forward: one thread per output, scanning its window in row-major order as the CPU kernel does
// (kernels/cpu/pool.cpp), so ties, NaNs and the order of additions are the same and the results
// match it bit for bit. Global average pooling (adaptive to 1x1, the head of ResNet and
// MobileNetV2) instead gives each (n, c) plane to one warp: lanes sum strided elements and a
// shuffle tree folds them (a different order than the CPU's vectorised sum: ~1e-7 relative).
// Backward: one thread per input element gathers from the outputs whose windows contain it, in
// the order in which the CPU scatter adds to that element (so again bit for bit): no atomics and
// no zero-fill pass, and every element of gx is written. For max pooling the gather adds the
// outputs whose saved index points at the element. When kernel == stride (2x2/2, the custom
// CNNs' pools) the windows tile the plane and each input lies in at most one, found with one
// division per axis. Global average pooling backward is a broadcast, gx[n, c, :, :] =
// gy[n, c] / (H * W), written as float4 where gx is 16-byte aligned.
// Every division by a launch constant (plane sizes, row lengths, strides, adaptive bin counts)
// is a multiply-high by a precomputed magic number (FastDiv, cuda_util.h), not an integer
// division: the general max-pool backward did seven of them per element.
// Bytes moved per element of the larger tensor, as bench_cuda_ops counts them for 2x2/2 on
// [64, 64, 112, 112]: max forward 7 (read x 4, write y 1 and int64 indices 2), max backward 7
// (read gy 1 and indices 2, write gx 4), average forward 5 (read x, write y 1), average backward
// 5 (read gy 1, write gx 4), global average forward 4 (read x) and backward 4 (write gx; gy is
// one float per plane). All memory-bound. Fraction of the copy bandwidth reached: not yet
// measured on a GPU.
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
  FastDiv64 in_area, out_area;  // h * w, oh * ow: the plane of a flat index
  FastDiv32 in_cols, out_cols;  // w, ow: the row within a plane
};

struct Window2d {
  int kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
  FastDiv32 div_sh, div_sw;  // by the strides
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
__device__ Span adaptive_span(int o, int in, const FastDiv64& out) {
  const auto div = [&](int64_t v) { return static_cast<int>(out.div(static_cast<uint64_t>(v))); };
  const int begin = div(int64_t{o} * in);
  const int end = div(int64_t{o + 1} * in + static_cast<int64_t>(out.d) - 1);
  return {begin, end, end - begin};
}

// The outputs [lo, hi] (inclusive; empty when lo > hi) whose window [o * stride - pad,
// o * stride - pad + kernel) contains input i: o * stride <= i + pad < o * stride + kernel.
struct Range {
  int lo, hi;
};

__device__ Range covering_windows(int i, int kernel, const FastDiv32& stride, int pad, int out) {
  const int t = i + pad - kernel + 1;  // the first o has o * stride >= t
  const auto div = [&](int v) { return static_cast<int>(stride.div(static_cast<uint32_t>(v))); };
  return {t <= 0 ? 0 : div(t + static_cast<int>(stride.d) - 1), min(div(i + pad), out - 1)};
}

// The same when kernel == stride: the windows tile the axis, so input i is in window
// (i + pad) / stride if that exists, and in no other.
__device__ Range tiled_window(int i, const FastDiv32& stride, int pad, int out) {
  const int o = static_cast<int>(stride.div(static_cast<uint32_t>(i + pad)));
  return {o, o < out ? o : o - 1};
}

// The adaptive bins containing input i: start(o) <= i gives o <= ((i + 1) * out - 1) / in, and
// end(o) > i gives o >= i * out / in (both floors; the bins cover every input, so the range is
// never empty).
__device__ Range covering_bins(int i, const FastDiv64& in, int out) {
  return {static_cast<int>(in.div(static_cast<uint64_t>(int64_t{i} * out))),
          static_cast<int>(in.div(static_cast<uint64_t>(int64_t{i + 1} * out - 1)))};
}

// The divisors of the adaptive bins along both axes.
struct AdaptiveDivs {
  FastDiv64 h, w, oh, ow;
};

// The (plane, y, x) coordinates of flat element i of [planes, rows, cols].
struct PlanePos {
  int64_t plane;
  int y, x;
};

__device__ PlanePos plane_pos(int64_t i, const FastDiv64& area, const FastDiv32& cols) {
  const int64_t plane = static_cast<int64_t>(area.div(static_cast<uint64_t>(i)));
  const uint32_t p = static_cast<uint32_t>(i - plane * static_cast<int64_t>(area.d));
  const uint32_t y = cols.div(p);
  return {plane, static_cast<int>(y), static_cast<int>(p - y * cols.d)};
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
    const PlanePos o = plane_pos(i, s.out_area, s.out_cols);
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

// The windows containing input (y, x), along each axis.
template <bool kTiled>
__device__ __forceinline__ void windows_of(const PlanePos& p, const PoolShape& s, const Window2d& k,
                                           Range& ry, Range& rx) {
  if constexpr (kTiled) {
    ry = tiled_window(p.y, k.div_sh, k.ph, s.oh);
    rx = tiled_window(p.x, k.div_sw, k.pw, s.ow);
  } else {
    ry = covering_windows(p.y, k.kh, k.div_sh, k.ph, s.oh);
    rx = covering_windows(p.x, k.kw, k.div_sw, k.pw, s.ow);
  }
}

// gx at (iy, ix) = the sum of gy over the outputs whose index is iy * W + ix, in row-major
// output order: the order in which the CPU's scatter adds them, starting from zero. kTiled:
// kernel == stride, at most one window.
template <bool kTiled>
__global__ void max_pool_backward_kernel(const float* __restrict__ gy,
                                         const int64_t* __restrict__ indices,
                                         float* __restrict__ gx, PoolShape s, Window2d k) {
  GRID_STRIDE_LOOP(i, s.planes * s.h * s.w) {
    const PlanePos p = plane_pos(i, s.in_area, s.in_cols);
    Range ry, rx;
    windows_of<kTiled>(p, s, k, ry, rx);
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
    const PlanePos o = plane_pos(i, s.out_area, s.out_cols);
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
// fixed input column): the loops below add in that same order. kTiled: kernel == stride, at most
// one window.
template <bool kTiled>
__global__ void avg_pool_backward_kernel(const float* __restrict__ gy, float* __restrict__ gx,
                                         PoolShape s, Window2d k) {
  GRID_STRIDE_LOOP(i, s.planes * s.h * s.w) {
    const PlanePos p = plane_pos(i, s.in_area, s.in_cols);
    Range ry, rx;
    windows_of<kTiled>(p, s, k, ry, rx);
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
                                            PoolShape s, AdaptiveDivs a) {
  GRID_STRIDE_LOOP(i, s.planes * s.oh * s.ow) {
    const PlanePos o = plane_pos(i, s.out_area, s.out_cols);
    const Span r = adaptive_span(o.y, s.h, a.oh), c = adaptive_span(o.x, s.w, a.ow);
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
                                             PoolShape s, AdaptiveDivs a) {
  GRID_STRIDE_LOOP(i, s.planes * s.h * s.w) {
    const PlanePos p = plane_pos(i, s.in_area, s.in_cols);
    const Range ry = covering_bins(p.y, a.h, s.oh), rx = covering_bins(p.x, a.w, s.ow);
    const float* g = gy + p.plane * s.oh * s.ow;
    float sum = 0.f;
    for (int oy = ry.lo; oy <= ry.hi; ++oy) {
      const int rc = adaptive_span(oy, s.h, a.oh).count;
      for (int ox = rx.lo; ox <= rx.hi; ++ox)
        sum += g[oy * s.ow + ox] /
               static_cast<float>(int64_t{rc} * adaptive_span(ox, s.w, a.ow).count);
    }
    gx[i] = sum;
  }
}

// Global average pooling backward, a map_kernel op: gx[plane, j] = 0 + gy[plane] / area (the CPU
// adds the share to a zeroed gx, and 0 + -0 is +0). The K elements of one access share one
// plane unless they straddle a plane boundary (area % 4 != 0); the share is then computed per
// element.
struct GlobalAvgBackward {
  const float* __restrict__ gy;
  float* __restrict__ gx;
  FastDiv64 area;
  float divisor;  // area as a float, the CPU's divisor

  __device__ float share(int64_t plane) const { return 0.f + gy[plane] / divisor; }
  template <int K>
  using Input = Chunk<K>;
  template <int K>
  __device__ Chunk<K> load(int64_t i) const {
    const auto plane = [&](int64_t e) {
      return static_cast<int64_t>(area.div(static_cast<uint64_t>(e)));
    };
    Chunk<K> c;
    const int64_t first = plane(i);
    if (first == plane(i + K - 1)) {
      const float v = share(first);
#pragma unroll
      for (int k = 0; k < K; ++k) c.v[k] = v;
    } else {
#pragma unroll
      for (int k = 0; k < K; ++k) c.v[k] = share(plane(i + k));
    }
    return c;
  }
  template <int K>
  __device__ void store(int64_t i, const Chunk<K>& c) const {
    store_chunk<K>(gx, i, c);
  }
};

#undef GRID_STRIDE_LOOP

// in: [N, C, H, W], out: [N, C, oh, ow] (either direction's tensors).
PoolShape pool_shape(const Tensor& in, const Tensor& out) {
  const int64_t h = in.size(2), w = in.size(3), oh = out.size(2), ow = out.size(3);
  ENGINE_CHECK(h * w <= INT_MAX && oh * ow <= INT_MAX, "pool2d (CUDA): planes of ", h, "x", w,
               " (output ", oh, "x", ow, ") exceed the kernels' 32-bit in-plane indexing");
  return {in.size(0) * in.size(1),
          static_cast<int>(h),
          static_cast<int>(w),
          static_cast<int>(oh),
          static_cast<int>(ow),
          FastDiv64(static_cast<uint64_t>(h * w)),
          FastDiv64(static_cast<uint64_t>(oh * ow)),
          FastDiv32(static_cast<uint32_t>(w)),
          FastDiv32(static_cast<uint32_t>(ow))};
}

AdaptiveDivs adaptive_divs(const PoolShape& s) {
  const auto div = [](int v) { return FastDiv64(static_cast<uint64_t>(v)); };
  return {div(s.h), div(s.w), div(s.oh), div(s.ow)};
}

// Windows that tile each axis without overlap.
bool tiled(const Pool2dParams& p) { return p.kernel_h == p.stride_h && p.kernel_w == p.stride_w; }

Window2d window_of(const Pool2dParams& p) {
  return {static_cast<int>(p.kernel_h),
          static_cast<int>(p.kernel_w),
          static_cast<int>(p.stride_h),
          static_cast<int>(p.stride_w),
          static_cast<int>(p.pad_h),
          static_cast<int>(p.pad_w),
          p.count_include_pad,
          FastDiv32(static_cast<uint32_t>(p.stride_h)),
          FastDiv32(static_cast<uint32_t>(p.stride_w))};
}

// Launches Kernel, a grid-stride loop over n items, with the grid sized from its occupancy.
template <auto Kernel, class... Args>
void launch(int64_t n, const Args&... args) {
  Kernel<<<device_grid<Kernel>(n), kBlock, 0, stream()>>>(args...);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, const Pool2dParams& p) {
  const int64_t n = y.numel();
  if (n == 0) return;
  launch<max_pool_forward_kernel>(n, fptr(x), fptr(y), indices.data<int64_t>(), pool_shape(x, y),
                                  window_of(p));
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, Tensor& gx,
                         const Pool2dParams& p) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  const PoolShape s = pool_shape(gx, gy);
  const int64_t* idx = indices.data<int64_t>();
  if (tiled(p))
    launch<max_pool_backward_kernel<true>>(n, fptr(gy), idx, fptr(gx), s, window_of(p));
  else
    launch<max_pool_backward_kernel<false>>(n, fptr(gy), idx, fptr(gx), s, window_of(p));
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  const int64_t n = y.numel();
  if (n == 0) return;
  launch<avg_pool_forward_kernel>(n, fptr(x), fptr(y), pool_shape(x, y), window_of(p));
}

void avg_pool2d_backward(const Tensor& gy, Tensor& gx, const Pool2dParams& p) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  const PoolShape s = pool_shape(gx, gy);
  if (tiled(p))
    launch<avg_pool_backward_kernel<true>>(n, fptr(gy), fptr(gx), s, window_of(p));
  else
    launch<avg_pool_backward_kernel<false>>(n, fptr(gy), fptr(gx), s, window_of(p));
}

void adaptive_avg_pool2d_forward(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  if (n == 0) return;
  const PoolShape s = pool_shape(x, y);
  if (s.oh == 1 && s.ow == 1)  // a warp per plane: 32 threads per item
    launch<global_avg_forward_kernel>(s.planes * 32, fptr(x), fptr(y), s.planes, s.h * s.w);
  else
    launch<adaptive_avg_forward_kernel>(n, fptr(x), fptr(y), s, adaptive_divs(s));
}

void adaptive_avg_pool2d_backward(const Tensor& gy, Tensor& gx) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  const PoolShape s = pool_shape(gx, gy);
  if (s.oh == 1 && s.ow == 1) {
    const GlobalAvgBackward op{fptr(gy), fptr(gx), s.in_area,
                               static_cast<float>(int64_t{s.h} * s.w)};
    const bool vector = aligned16(op.gx);
    map_kernel<GlobalAvgBackward>
        <<<map_grid<GlobalAvgBackward>(n, vector), kBlock, 0, stream()>>>(op, n, vector);
    ENGINE_CUDA_CHECK(cudaGetLastError());
  } else {
    launch<adaptive_avg_backward_kernel>(n, fptr(gy), fptr(gx), s, adaptive_divs(s));
  }
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
