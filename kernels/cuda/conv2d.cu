// Native CUDA conv2d and its planner. Algorithms (conv2d_plan.h names them), chosen per pass and
// shape: conv2d_implicit_gemm for every convolution, conv2d_winograd_f2x3 (conv2d_winograd.cu)
// for 3x3 stride-1 layers where the model finds it cheaper, conv2d_direct_small_cin for the
// forward of layers with at most 4 input channels, conv2d_depthwise_direct for groups == Cin ==
// Cout (MobileNetV2's depthwise layers). Plain FP32 FMA throughout (no TF32).
//
// conv2d_implicit_gemm. All three passes run the implicit-GEMM core (conv2d_gemm.cuh), whose
// operands are never materialised: an operand functor of this file gathers element (k, r) of the
// virtual im2col matrix from the NCHW tensor on the fly (zero for padding and out-of-range
// indices), per group:
//   forward        y[m, co]  = sum_k  x_patch[k, m] * w[co, k]   M = N*OH*OW, Ncols = Cout/G,
//                                                                K = Cin/G*kH*kW (bias and
//                                                                activation in the epilogue)
//   backward data  gx[m, ci] = sum_k gy_patch[k, m] * w[co, ci, tap]   M = N*H*W, Ncols = Cin/G,
//                  K = (co, kh, kw) = Cout/G*kH*kW; gy_patch gathers gy[n, co, oh, ow] where
//                  oh*s = ih + p - kh*d (zero where that is not a multiple of the stride or out of
//                  range), so every gx element is written once (no atomics, no zeroing).
//   backward weight gw[co, j] = sum_k gy[k, co] * x_patch[k, j]   M = Cout/G, Ncols = Cin/G*kH*kW,
//                  K = N*OH*OW.
// The core's planner picks the tile shape and a split of K of any count, by a model of whole
// waves (SM count x resident blocks per SM from the occupancy API) plus the split's partial-sum
// traffic. Any pass may split: its slices write [splits, output] scratch, summed in a fixed order
// by sum_splits (which applies the forward's bias and activation after the sum), so results are
// deterministic and no float atomics are used. The batch-8 1024-channel layers at 16x16 (M 2048,
// N 1024: 128 tiles of 128x128 for 264 resident slots) split K in two; the 3->32 first layer's
// backward weight (32 x 27 outputs, K = 262144 at batch 64) in hundreds.
//
// conv2d_direct_small_cin (forward, Cin <= 4, one group): a block stages the weights of 16 output
// channels in shared memory and each thread computes one output pixel for those 16 channels,
// every loaded input feeding 16 FMAs, where a GEMM tile of 32 columns would be mostly padding
// (K = 27 for the 3->32 first layer).
//
// Forward epilogue: y = act(acc + b) as each accumulator is stored, act from
// Conv2dParams::activation (ReLU, ReLU6, Sigmoid, Tanh: cuda_util.h's act_forward, the activation
// kernels' own) or none; each is its own instantiation of the kernel, so the store has no branch.
// It saves the separate activation's pass (a read and a write of y: 8 bytes per output) at the
// price of a compare (ReLU/ReLU6) or an expf/tanhf per output, beside 2*K FMAs of the convolution.
//
// conv2d_depthwise_direct: forward one thread per output (with the same epilogue), backward data
// one thread per input (taps whose output position is not a multiple of the stride skip), backward
// weight one block per (channel, slice of N*OH*OW) reducing up to 9 taps at once with warp
// shuffles, slices summed in a fixed order. The bias gradient is its own reduction (block per
// (channel, slice)), the same for all algorithms. Every reduction is deterministic.
//
// Work for typical shapes (batch 64): the study's 256->256 3x3 conv at 32x32 is 77.3 GFLOP per
// pass and moves ~136 MB (x, y 67 MB each, w 2.4 MB): compute bound, 1.15 ms at the H200's
// 67 TFLOP/s FP32. MobileNetV2's 144-channel 3x3 depthwise conv at 56x56 is 0.52 GFLOP and moves
// 231 MB: memory bound, 48 us at 4.8 TB/s. Speed has not been measured on a GPU (the planner's
// figures are its model's, from datasheet numbers).
// Registers (nvcc 13.0 -Xptxas -v, sm_90): __launch_bounds__(256, 2) caps implicit_gemm at 128;
// its instantiations here use 89-128 and none spills except the 128x128 backward-weight one (its
// staging keeps 4 rows x 3 ints of x-patch state beside 64 accumulators; to time on the GPU
// against 128x64, which ENGINE_CUDA_CONV_TILE=128x64 forces). small_cin_forward_kernel: 48
// registers (its sigmoid and tanh epilogues spill 8 bytes around the expf/tanhf slow path).
// ENGINE_CUDA_CONV_ALGO, ENGINE_CUDA_CONV_TILE, ENGINE_CUDA_CONV_SPLITS force a choice and
// ENGINE_CUDA_CONV_LOG=1 prints each plan (conv2d_plan.h, conv2d_gemm.cuh).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "kernels/cuda/conv2d_gemm.cuh"
#include "kernels/cuda/conv2d_plan.h"
#include "kernels/cuda/conv2d_winograd.h"

namespace engine::cuda {
namespace {

using gemm::ceil_div;
using gemm::GemmPlan;
using gemm::inside;
using gemm::kInvalid;
using gemm::NoActivation;
using gemm::sm_count;
using gemm::with_activation;

// ---------------------------------------------------------------------------------------------
// Shared pieces.

// Every kernel of this file is launched through here: on the process stream, then checked.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  kernel<<<grid, block, 0, stream()>>>(args...);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}
// The same as a callable object, for gemm::run_gemm.
constexpr auto kLaunch = [](auto... a) { launch(a...); };

// Division by a divisor fixed for a whole launch, as a multiply-high and a shift (Granlund and
// Montgomery's method, as in CUTLASS's FastDivmod and PyTorch's IntDivider): the index decoding of
// im2col needs several divisions per loaded element, and GPUs have no integer divide instruction
// (the compiler emits ~20). Exact for 0 <= n < 2^31 and 1 <= d < 2^31.
struct FastDivmod {
  uint32_t d = 1, mul = 1, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(int64_t divisor) : d(static_cast<uint32_t>(divisor)) {
    while ((uint64_t{1} << shift) < d) ++shift;
    mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ int div(int n) const {
    const uint32_t u = static_cast<uint32_t>(n);
    return static_cast<int>((__umulhi(u, mul) + u) >> shift);
  }
};

// The convolution as the kernels see it. Every extent, the weight's size and every offset within
// one image fit in int (checked by conv_geom); offsets that involve the batch index are int64.
struct Geom {
  int n, cin, h, w, cout, oh, ow, kh, kw, groups, cin_g, cout_g;
  int sh, sw, ph, pw, dh, dw;
  int hw, ohw, khw;
  int x_image, y_image;  // Cin*H*W, Cout*OH*OW: the batch stride of x and y
  FastDivmod div_ow, div_w, div_ohw, div_hw, div_kw, div_khw, div_sh, div_sw;
};

Geom conv_geom(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  // Row counts of the GEMMs (N*H*W, N*OH*OW) and the per-thread grid-stride indices stay below
  // 2^30, so int arithmetic and FastDivmod are exact and a grid-stride step cannot overflow.
  constexpr int64_t kLimit = int64_t{1} << 30;
  const int64_t big = std::max({x[0] * x[2] * x[3], y[0] * y[2] * y[3], x[1] * x[2] * x[3],
                                w[0] * y[2] * y[3], w[1] * w[2] * w[3], w[0] * w[2] * w[3],
                                x[0] * x[1], y[0] * w[0], w[0] * w[1] * w[2] * w[3]});
  ENGINE_CHECK(big < kLimit, "conv2d (native CUDA): input ", shape_str(x), ", weight ",
               shape_str(w), " exceeds the 2^30 extents of the index arithmetic");
  Geom g{};
  g.n = static_cast<int>(x[0]), g.cin = static_cast<int>(x[1]);
  g.h = static_cast<int>(x[2]), g.w = static_cast<int>(x[3]);
  g.cout = static_cast<int>(w[0]), g.kh = static_cast<int>(w[2]), g.kw = static_cast<int>(w[3]);
  g.oh = static_cast<int>(y[2]), g.ow = static_cast<int>(y[3]);
  g.groups = static_cast<int>(p.groups);
  g.cin_g = g.cin / g.groups, g.cout_g = g.cout / g.groups;
  g.sh = static_cast<int>(p.stride_h), g.sw = static_cast<int>(p.stride_w);
  g.ph = static_cast<int>(p.pad_h), g.pw = static_cast<int>(p.pad_w);
  g.dh = static_cast<int>(p.dilation_h), g.dw = static_cast<int>(p.dilation_w);
  g.hw = g.h * g.w, g.ohw = g.oh * g.ow, g.khw = g.kh * g.kw;
  g.x_image = g.cin * g.hw, g.y_image = g.cout * g.ohw;
  g.div_ow = FastDivmod(g.ow), g.div_w = FastDivmod(g.w);
  g.div_ohw = FastDivmod(g.ohw), g.div_hw = FastDivmod(g.hw);
  g.div_kw = FastDivmod(g.kw), g.div_khw = FastDivmod(g.khw);
  g.div_sh = FastDivmod(g.sh), g.div_sw = FastDivmod(g.sw);
  return g;
}

bool is_depthwise(const Geom& g) { return g.groups == g.cin && g.groups == g.cout; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Sums v[t] over the block for each t; thread t < T returns the total of v[t] (others: garbage).
// Fixed order: warp shuffles, then warp partials in warp order. Call at most once per kernel.
template <int T>
__device__ float block_sum(float (&v)[T]) {
  __shared__ float partial[T][kBlock / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int t = 0; t < T; ++t) {
    const float s = warp_sum(v[t]);
    if (lane == 0) partial[t][warp] = s;
  }
  __syncthreads();
  float total = 0.f;
  if (threadIdx.x < T)
    for (int w = 0; w < kBlock / 32; ++w) total += partial[threadIdx.x][w];
  return total;
}

// out[i] = act(sum over s < splits of part[s*n + i], s in order, + bias[(i / plane) % channels]):
// the fixed-order reduction of split-K partial sums, with the forward epilogue where the GEMM
// could not apply it (bias may be null; plane, channels: OH*OW, Cout for y's layout).
template <class Act>
__global__ void sum_splits_kernel(const float* part, int splits, int64_t n, const float* bias,
                                  int64_t plane, int64_t channels, float* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.f;
    for (int k = 0; k < splits; ++k) s += part[k * n + i];
    out[i] = Act{}(bias ? s + bias[(i / plane) % channels] : s);
  }
}

template <class Act = NoActivation>
void sum_splits(const float* part, int splits, int64_t n, float* out, const float* bias = nullptr,
                int64_t plane = 1, int64_t channels = 1) {
  launch(sum_splits_kernel<Act>, grid_for(n), kBlock, part, splits, n, bias, plane, channels, out);
}

// A reduction over K = N*OH*OW elements per channel runs as channels x splits blocks: enough
// splits to give every SM a few blocks, but at least kMinSliceK elements per block.
int reduction_splits(int64_t channels, int64_t k) {
  constexpr int64_t kMinSliceK = 4096;
  const int64_t want = ceil_div(4 * sm_count(), channels);
  return static_cast<int>(std::clamp<int64_t>(std::min(want, ceil_div(k, kMinSliceK)), 1, 65535));
}

// ---------------------------------------------------------------------------------------------
// Forward operands. A[k, m] = x[n, g*Cin/G + ci, oh*s - p + kh*d, ow*s - p + kw*d] with
// m = (n, oh, ow) and k = (ci, kh, kw); B[k, co] = w[g*Cout/G + co, k] (w's own layout).

struct ForwardInput {
  static constexpr bool kRowContiguous = true;
  const float* x;
  Geom g;
  struct Row {
    int n;
    int ih0, iw0;  // oh*s - p, ow*s - p
  };
  struct Col {
    int channel;   // ci*H*W
    int dkh, dkw;  // kh*d, kw*d
  };
  __device__ void bind(int group) { x += int64_t{group} * g.cin_g * g.hw; }
  __device__ Row row(int m) const {
    if (m >= g.n * g.ohw) return {0, kInvalid, kInvalid};
    const int n = g.div_ohw.div(m), q = m - n * g.ohw;
    const int oh = g.div_ow.div(q), ow = q - oh * g.ow;
    return {n, oh * g.sh - g.ph, ow * g.sw - g.pw};
  }
  __device__ Col col(int k) const {
    if (k >= g.cin_g * g.khw) return {0, kInvalid, kInvalid};
    const int ci = g.div_khw.div(k), tap = k - ci * g.khw;
    const int kh = g.div_kw.div(tap), kw = tap - kh * g.kw;
    return {ci * g.hw, kh * g.dh, kw * g.dw};
  }
  __device__ float load(const Row& r, const Col& c) const {
    const int ih = r.ih0 + c.dkh, iw = r.iw0 + c.dkw;
    if (!inside(ih, g.h) || !inside(iw, g.w)) return 0.f;
    return x[int64_t{r.n} * g.x_image + (c.channel + ih * g.w + iw)];
  }
};

struct ForwardWeight {
  static constexpr bool kRowContiguous = false;
  const float* w;
  int cout_g, k_size;  // rows, K
  struct Row {
    int offset;  // co*K, or -1 past the last output channel
  };
  struct Col {
    int k;
  };
  __device__ void bind(int group) { w += int64_t{group} * cout_g * k_size; }
  __device__ Row row(int co) const { return {co < cout_g ? co * k_size : -1}; }
  __device__ Col col(int k) const { return {k}; }
  __device__ float load(const Row& r, const Col& c) const {
    return r.offset >= 0 && c.k < k_size ? w[r.offset + c.k] : 0.f;
  }
};

// Writes y = act(v + bias); Act is NoActivation or WithActivation<A> (the fused epilogue). Under a
// split of K, split s writes its partial sum to out + s*slice (a scratch in y's layout, with no
// bias and NoActivation), and sum_splits applies the epilogue.
template <class Act>
struct ForwardOutput {
  float* y;
  const float* bias;  // may be null
  Geom g;
  int64_t slice = 0;  // N*Cout*OH*OW under a split
  struct Row {
    int64_t offset;  // n*Cout*OH*OW + oh*OW + ow
  };
  __device__ void bind(int group, int split) {
    y += split * slice + int64_t{group} * g.cout_g * g.ohw;
    if (bias) bias += group * g.cout_g;
  }
  __device__ Row row(int m) const {
    const int n = g.div_ohw.div(m);
    return {int64_t{n} * g.cout * g.ohw + (m - n * g.ohw)};
  }
  __device__ void store(const Row& r, int co, float v) const {
    y[r.offset + int64_t{co} * g.ohw] = Act{}(bias ? v + bias[co] : v);
  }
};

// ---------------------------------------------------------------------------------------------
// Backward-data operands. A[k, m] = gy[n, g*Cout/G + co, oh, ow] with m = (n, ih, iw),
// k = (co, kh, kw), oh = (ih + p - kh*d) / s when that divides exactly and is in range, else 0;
// B[k, ci] = w[g*Cout/G + co, ci, kh, kw].

struct BackwardDataGradOutput {
  static constexpr bool kRowContiguous = true;
  const float* gy;
  Geom g;
  struct Row {
    int n;
    int th, tw;  // ih + p, iw + p
  };
  struct Col {
    int channel;   // co*OH*OW
    int dkh, dkw;  // kh*d, kw*d
  };
  __device__ void bind(int group) { gy += int64_t{group} * g.cout_g * g.ohw; }
  __device__ Row row(int m) const {
    if (m >= g.n * g.hw) return {0, kInvalid, kInvalid};
    const int n = g.div_hw.div(m), q = m - n * g.hw;
    const int ih = g.div_w.div(q), iw = q - ih * g.w;
    return {n, ih + g.ph, iw + g.pw};
  }
  __device__ Col col(int k) const {
    if (k >= g.cout_g * g.khw) return {0, -kInvalid, -kInvalid};
    const int co = g.div_khw.div(k), tap = k - co * g.khw;
    const int kh = g.div_kw.div(tap), kw = tap - kh * g.kw;
    return {co * g.ohw, kh * g.dh, kw * g.dw};
  }
  __device__ float load(const Row& r, const Col& c) const {
    const int a = r.th - c.dkh, b = r.tw - c.dkw;  // oh*s, ow*s if this tap reaches (ih, iw)
    if (a < 0 || b < 0) return 0.f;
    const int oh = g.div_sh.div(a), ow = g.div_sw.div(b);
    const bool hit = oh * g.sh == a && ow * g.sw == b && oh < g.oh && ow < g.ow;
    return hit ? gy[int64_t{r.n} * g.y_image + (c.channel + oh * g.ow + ow)] : 0.f;
  }
};

struct BackwardDataWeight {
  static constexpr bool kRowContiguous = false;
  const float* w;
  Geom g;
  struct Row {
    int offset;  // ci*kH*kW, or -1 past the last input channel
  };
  struct Col {
    int offset;  // co*(Cin/G)*kH*kW + tap, or -1 for k >= K
  };
  __device__ void bind(int group) { w += int64_t{group} * g.cout_g * g.cin_g * g.khw; }
  __device__ Row row(int ci) const { return {ci < g.cin_g ? ci * g.khw : -1}; }
  __device__ Col col(int k) const {
    if (k >= g.cout_g * g.khw) return {-1};
    const int co = g.div_khw.div(k);
    return {co * g.cin_g * g.khw + (k - co * g.khw)};
  }
  __device__ float load(const Row& r, const Col& c) const {
    return r.offset >= 0 && c.offset >= 0 ? w[c.offset + r.offset] : 0.f;
  }
};

// Writes gx, or under a split of K slice `split` of a scratch in gx's layout.
struct BackwardDataOutput {
  float* gx;
  Geom g;
  int64_t slice = 0;  // N*Cin*H*W under a split
  struct Row {
    int64_t offset;  // n*Cin*H*W + ih*W + iw
  };
  __device__ void bind(int group, int split) {
    gx += split * slice + int64_t{group} * g.cin_g * g.hw;
  }
  __device__ Row row(int m) const {
    const int n = g.div_hw.div(m);
    return {int64_t{n} * g.cin * g.hw + (m - n * g.hw)};
  }
  __device__ void store(const Row& r, int ci, float v) const {
    gx[r.offset + int64_t{ci} * g.hw] = v;
  }
};

// ---------------------------------------------------------------------------------------------
// Backward-weight operands. A[k, co] = gy[n, g*Cout/G + co, oh, ow] with k = (n, oh, ow);
// B[k, j] = x[n, g*Cin/G + ci, oh*s - p + kh*d, ow*s - p + kw*d] with j = (ci, kh, kw).

struct BackwardWeightGradOutput {
  static constexpr bool kRowContiguous = false;
  const float* gy;
  Geom g;
  struct Row {
    int offset;  // co*OH*OW, or -1 past the last output channel
  };
  struct Col {
    int64_t offset;  // n*Cout*OH*OW + oh*OW + ow, or -1 for k >= K
  };
  __device__ void bind(int group) { gy += int64_t{group} * g.cout_g * g.ohw; }
  __device__ Row row(int co) const { return {co < g.cout_g ? co * g.ohw : -1}; }
  __device__ Col col(int k) const {
    if (k >= g.n * g.ohw) return {-1};
    const int n = g.div_ohw.div(k);
    return {int64_t{n} * g.cout * g.ohw + (k - n * g.ohw)};
  }
  __device__ float load(const Row& r, const Col& c) const {
    return r.offset >= 0 && c.offset >= 0 ? gy[c.offset + r.offset] : 0.f;
  }
};

struct BackwardWeightInput {
  static constexpr bool kRowContiguous = false;
  const float* x;
  Geom g;
  struct Row {
    int channel;   // ci*H*W
    int dkh, dkw;  // kh*d - p, kw*d - p
  };
  struct Col {
    int64_t image;  // n*Cin*H*W
    int ih0, iw0;   // oh*s, ow*s
  };
  __device__ void bind(int group) { x += int64_t{group} * g.cin_g * g.hw; }
  __device__ Row row(int j) const {
    if (j >= g.cin_g * g.khw) return {0, kInvalid, kInvalid};
    const int ci = g.div_khw.div(j), tap = j - ci * g.khw;
    const int kh = g.div_kw.div(tap), kw = tap - kh * g.kw;
    return {ci * g.hw, kh * g.dh - g.ph, kw * g.dw - g.pw};
  }
  __device__ Col col(int k) const {
    if (k >= g.n * g.ohw) return {0, kInvalid, kInvalid};
    const int n = g.div_ohw.div(k), q = k - n * g.ohw;
    const int oh = g.div_ow.div(q), ow = q - oh * g.ow;
    return {int64_t{n} * g.cin * g.hw, oh * g.sh, ow * g.sw};
  }
  __device__ float load(const Row& r, const Col& c) const {
    const int ih = c.ih0 + r.dkh, iw = c.iw0 + r.dkw;
    return inside(ih, g.h) && inside(iw, g.w) ? x[c.image + r.channel + ih * g.w + iw] : 0.f;
  }
};

// Writes gw[g*Cout/G + co, j], or slice `split` of the [splits, Cout, Cin/G*kH*kW] scratch.
struct BackwardWeightOutput {
  float* out;
  int64_t slice;  // Cout*(Cin/G)*kH*kW: the size of gw and of one scratch slice
  int cout_g, cols;
  struct Row {
    int64_t offset;  // co*cols
  };
  __device__ void bind(int group, int split) {
    out += split * slice + int64_t{group} * cout_g * cols;
  }
  __device__ Row row(int co) const { return {int64_t{co} * cols}; }
  __device__ void store(const Row& r, int j, float v) const { out[r.offset + j] = v; }
};

// ---------------------------------------------------------------------------------------------
// Depthwise (groups == Cin == Cout, w [C, 1, kH, kW]) direct kernels. Weights are read through
// the read-only cache: the threads of a warp mostly share one channel, so those reads broadcast.

// How the depthwise forward and backward-data kernels cover `planes` planes of `size` pixels
// each: with planes under a block's size, a block takes per_block whole planes at once (thread t:
// plane t / size, pixel t % size; 245 of 256 threads busy on 7x7 planes), else one plane at a time
// in 256-pixel pieces along grid.x. grid.y strides over the planes.
struct PlaneCover {
  int planes, size, per_block, span;  // span: pixels per block along a plane
};

PlaneCover plane_cover(int64_t planes, int64_t size, dim3* grid) {
  PlaneCover c{static_cast<int>(planes), static_cast<int>(size), 1, kBlock};
  if (size < kBlock) c.per_block = static_cast<int>(kBlock / size), c.span = c.size;
  const int64_t gx = size < kBlock ? 1 : std::min<int64_t>(ceil_div(size, kBlock), kMaxBlocks);
  const int64_t gy = std::clamp<int64_t>(kMaxBlocks / gx, 1,
                                         std::min<int64_t>(ceil_div(planes, c.per_block), 65535));
  *grid = dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  return c;
}

// y[n, c, oh, ow] = act(b[c] + sum over taps of w[c, kh, kw] * x[n, c, oh*s - p + kh*d, ...]):
// one thread per output. kK > 0: a kK x kK kernel known at compile time (3x3, the common case,
// with its tap loops unrolled); kK = 0: any kernel size, from g. Act as for ForwardOutput.
template <int kK, class Act>
__global__ void depthwise_forward_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                         const float* __restrict__ bias, float* __restrict__ y,
                                         Geom g, PlaneCover cover) {
  const int kh = kK > 0 ? kK : g.kh, kw = kK > 0 ? kK : g.kw;
  const int pl = threadIdx.x / cover.span, q0 = threadIdx.x - pl * cover.span;
  if (pl >= cover.per_block) return;  // the few threads past the last whole plane
  for (int plane = blockIdx.y * cover.per_block + pl; plane < cover.planes;
       plane += gridDim.y * cover.per_block) {
    const int c = plane % g.cout;
    const float* xp = x + int64_t{plane} * g.hw;
    const float* wp = w + c * kh * kw;
    for (int q = blockIdx.x * cover.span + q0; q < g.ohw; q += gridDim.x * cover.span) {
      const int oh = g.div_ow.div(q), ow = q - oh * g.ow;
      const int ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < kh; ++i) {
        const int ih = ih0 + i * g.dh;
        if (!inside(ih, g.h)) continue;
#pragma unroll
        for (int j = 0; j < kw; ++j) {
          const int iw = iw0 + j * g.dw;
          if (inside(iw, g.w)) s = fmaf(xp[ih * g.w + iw], __ldg(wp + i * kw + j), s);
        }
      }
      y[int64_t{plane} * g.ohw + q] = Act{}(bias ? s + __ldg(bias + c) : s);
    }
  }
}

// gx[n, c, ih, iw] = sum over taps (kh, kw) with ih + p - kh*d = oh*s, 0 <= oh < OH (likewise
// for the width) of w[c, kh, kw] * gy[n, c, oh, ow]: the gather form, one thread per input.
// kK as for the forward kernel.
template <int kK>
__global__ void depthwise_backward_data_kernel(const float* __restrict__ gy,
                                               const float* __restrict__ w, float* __restrict__ gx,
                                               Geom g, PlaneCover cover) {
  const int kh = kK > 0 ? kK : g.kh, kw = kK > 0 ? kK : g.kw;
  const int pl = threadIdx.x / cover.span, q0 = threadIdx.x - pl * cover.span;
  if (pl >= cover.per_block) return;
  for (int plane = blockIdx.y * cover.per_block + pl; plane < cover.planes;
       plane += gridDim.y * cover.per_block) {
    const int c = plane % g.cin;
    const float* gyp = gy + int64_t{plane} * g.ohw;
    const float* wp = w + c * kh * kw;
    for (int q = blockIdx.x * cover.span + q0; q < g.hw; q += gridDim.x * cover.span) {
      const int ih = g.div_w.div(q), iw = q - ih * g.w;
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < kh; ++i) {
        const int a = ih + g.ph - i * g.dh;  // oh*s if tap i reaches row ih
        if (a < 0) break;                    // a only falls as i grows
        const int oh = g.div_sh.div(a);
        if (oh * g.sh != a || oh >= g.oh) continue;
#pragma unroll
        for (int j = 0; j < kw; ++j) {
          const int b = iw + g.pw - j * g.dw;
          if (b < 0) break;
          const int ow = g.div_sw.div(b);
          if (ow * g.sw == b && ow < g.ow) s = fmaf(gyp[oh * g.ow + ow], __ldg(wp + i * kw + j), s);
        }
      }
      gx[int64_t{plane} * g.hw + q] = s;
    }
  }
}

// Block (c, split) sums gy[n, c, oh, ow] * x[n, c, ih, iw] over its slice of k = (n, oh, ow) for
// kTaps taps starting at tap0 (a kernel with more taps takes several launches), then writes
// out[split, c, tap] (out = gw when there is one slice).
constexpr int kTaps = 9;

__global__ void __launch_bounds__(kBlock)
    depthwise_backward_weight_kernel(const float* __restrict__ gy, const float* __restrict__ x,
                                     float* __restrict__ out, Geom g, int tap0, int slice_k) {
  const int c = blockIdx.x, split = blockIdx.y;
  const int taps = min(kTaps, g.khw - tap0);
  int dkh[kTaps], dkw[kTaps];  // kh*d - p, kw*d - p of each tap; unused taps never reach inside()
#pragma unroll
  for (int t = 0; t < kTaps; ++t) {
    const int tap = t < taps ? tap0 + t : 0;
    const int kh = g.div_kw.div(tap), kw = tap - kh * g.kw;
    dkh[t] = t < taps ? kh * g.dh - g.ph : kInvalid;
    dkw[t] = kw * g.dw - g.pw;
  }
  float acc[kTaps] = {};
  const int k_begin = split * slice_k, k_end = min(g.n * g.ohw, k_begin + slice_k);
  for (int k = k_begin + threadIdx.x; k < k_end; k += blockDim.x) {
    const int n = g.div_ohw.div(k), q = k - n * g.ohw;
    const int oh = g.div_ow.div(q), ow = q - oh * g.ow;
    const int64_t plane = int64_t{n} * g.cout + c;
    const float d = gy[plane * g.ohw + q];
    const float* xp = x + plane * g.hw;
#pragma unroll
    for (int t = 0; t < kTaps; ++t) {
      const int ih = oh * g.sh + dkh[t], iw = ow * g.sw + dkw[t];
      if (inside(ih, g.h) && inside(iw, g.w)) acc[t] = fmaf(d, xp[ih * g.w + iw], acc[t]);
    }
  }
  const float total = block_sum(acc);
  if (static_cast<int>(threadIdx.x) < taps)
    out[int64_t{split} * g.cout * g.khw + c * g.khw + tap0 + threadIdx.x] = total;
}

// Bias gradient: block (co, split) sums gy[n, co, :, :] over its slice of k = (n, oh, ow) of
// K = n*ohw, writing out[split, co].
__global__ void __launch_bounds__(kBlock)
    bias_grad_kernel(const float* __restrict__ gy, float* __restrict__ out, int n, int cout,
                     int ohw, FastDivmod div_ohw, int slice_k) {
  const int co = blockIdx.x, split = blockIdx.y;
  const int k_begin = split * slice_k, k_end = min(n * ohw, k_begin + slice_k);
  float acc[1] = {0.f};
  for (int k = k_begin + threadIdx.x; k < k_end; k += blockDim.x) {
    const int i = div_ohw.div(k);
    acc[0] += gy[(int64_t{i} * cout + co) * ohw + (k - i * ohw)];
  }
  const float total = block_sum(acc);
  if (threadIdx.x == 0) out[int64_t{split} * cout + co] = total;
}

// ---------------------------------------------------------------------------------------------
// conv2d_direct_small_cin: the forward of a convolution with at most four input channels (the
// first layer, 3 -> 32), where K = Cin*kH*kW is 27 and Cout 32, so GEMM tiles run mostly empty.
// A block's weights for kSmallCo output channels are staged in shared memory (tap-major, so
// a warp's reads of one tap broadcast); each thread computes one output pixel for those kSmallCo
// channels, every input value it loads feeding kSmallCo FMAs. grid = (pixel blocks, channel
// blocks).
constexpr int kSmallCo = 16, kSmallCinMax = 4, kSmallTapsMax = kSmallCinMax * 49;  // up to 7x7

bool small_cin_applies(const Geom& g) {
  return g.groups == 1 && g.cin <= kSmallCinMax && g.cin * g.khw <= kSmallTapsMax;
}

template <class Act>
__global__ void __launch_bounds__(kBlock)
    small_cin_forward_kernel(const float* __restrict__ x, const float* __restrict__ w,
                             const float* __restrict__ bias, float* __restrict__ y, Geom g) {
  __shared__ float ws[kSmallTapsMax * kSmallCo];
  const int co0 = blockIdx.y * kSmallCo, taps = g.cin * g.khw;
  for (int i = threadIdx.x; i < taps * kSmallCo; i += blockDim.x) {
    const int tap = i / kSmallCo, co = co0 + i % kSmallCo;
    ws[i] = co < g.cout ? w[co * taps + tap] : 0.f;
  }
  __syncthreads();
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  if (m >= g.n * g.ohw) return;
  const int n = g.div_ohw.div(m), q = m - n * g.ohw;
  const int oh = g.div_ow.div(q), ow = q - oh * g.ow;
  const int ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
  float acc[kSmallCo] = {};
  for (int ci = 0; ci < g.cin; ++ci) {
    const float* xc = x + (int64_t{n} * g.cin + ci) * g.hw;
    for (int i = 0; i < g.kh; ++i) {
      const int ih = ih0 + i * g.dh;
      if (!inside(ih, g.h)) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int iw = iw0 + j * g.dw;
        if (!inside(iw, g.w)) continue;
        const float v = xc[ih * g.w + iw];
        const float* wt = ws + ((ci * g.kh + i) * g.kw + j) * kSmallCo;
#pragma unroll
        for (int c = 0; c < kSmallCo; ++c) acc[c] = fmaf(v, wt[c], acc[c]);
      }
    }
  }
  float* yp = y + int64_t{n} * g.y_image + q;
#pragma unroll
  for (int c = 0; c < kSmallCo; ++c) {
    const int co = co0 + c;
    if (co < g.cout) yp[int64_t{co} * g.ohw] = Act{}(bias ? acc[c] + __ldg(bias + co) : acc[c]);
  }
}

// ---------------------------------------------------------------------------------------------
// The planner: which algorithm, tile and split each pass runs (see conv2d_plan.h).

// The operand types of each pass's implicit GEMM, whose occupancy the plan depends on.
const gemm::Occupancy& forward_occupancy() {
  return gemm::occupancy<ForwardInput, ForwardWeight, ForwardOutput<NoActivation>>();
}
const gemm::Occupancy& backward_data_occupancy() {
  return gemm::occupancy<BackwardDataGradOutput, BackwardDataWeight, BackwardDataOutput>();
}
const gemm::Occupancy& backward_weight_occupancy() {
  return gemm::occupancy<BackwardWeightGradOutput, BackwardWeightInput, BackwardWeightOutput>();
}

// ENGINE_CUDA_CONV_ALGO, read on every call (so tests can switch); nullopt when unset.
std::optional<ConvAlgo> forced_algo() {
  const char* e = std::getenv("ENGINE_CUDA_CONV_ALGO");
  if (e == nullptr || *e == '\0') return std::nullopt;
  for (ConvAlgo a :
       {ConvAlgo::ImplicitGemm, ConvAlgo::Winograd2, ConvAlgo::Winograd4, ConvAlgo::DirectSmallCin})
    if (std::string(e) == conv_algo_name(a)) return a;
  ENGINE_CHECK(false, "ENGINE_CUDA_CONV_ALGO=", e,
               ": expected implicit_gemm, winograd2, winograd4 or direct_small_cin");
  return std::nullopt;
}

struct Choice {
  ConvAlgo algo = ConvAlgo::ImplicitGemm;
  GemmPlan gemm;  // of the implicit GEMM or of Winograd's products
};

// The implicit GEMM's M, N, K of each pass.
struct Mnk {
  int64_t m, n, k;
};
Mnk gemm_dims(ConvPass pass, const Geom& g) {
  switch (pass) {
    case ConvPass::Forward:
      return {int64_t{g.n} * g.ohw, g.cout_g, int64_t{g.cin_g} * g.khw};
    case ConvPass::BackwardData:
      return {int64_t{g.n} * g.hw, g.cin_g, int64_t{g.cout_g} * g.khw};
    case ConvPass::BackwardWeight:
      return {g.cout_g, int64_t{g.cin_g} * g.khw, int64_t{g.n} * g.ohw};
  }
  return {0, 0, 0};
}

// Direct kernels where they apply (depthwise always; few input channels for the forward unless
// another algorithm is forced), else the cheaper of the implicit GEMM and Winograd F(2x2,3x3) by
// the model. F(4x4,3x3) only when forced: like the CPU's, its larger transform constants cost
// float32 accuracy (kernels/cpu/conv2d.cpp).
Choice choose(ConvPass pass, const Geom& g, const Shape& x, const Shape& w, const Shape& y,
              const Conv2dParams& p) {
  Choice c;
  if (is_depthwise(g)) return {ConvAlgo::Depthwise, {}};
  const std::optional<ConvAlgo> forced = forced_algo();
  if (pass == ConvPass::Forward && small_cin_applies(g) &&
      (!forced || *forced == ConvAlgo::DirectSmallCin))
    return {ConvAlgo::DirectSmallCin, {}};
  const Mnk d = gemm_dims(pass, g);
  const gemm::Occupancy& occ = pass == ConvPass::Forward        ? forward_occupancy()
                               : pass == ConvPass::BackwardData ? backward_data_occupancy()
                                                                : backward_weight_occupancy();
  c.gemm = gemm::plan_gemm(d.m, d.n, d.k, g.groups, occ);
  if (pass == ConvPass::BackwardWeight || forced == ConvAlgo::ImplicitGemm) return c;
  const bool backward_data = pass == ConvPass::BackwardData;
  for (int m : {2, 4}) {
    const ConvAlgo a = m == 2 ? ConvAlgo::Winograd2 : ConvAlgo::Winograd4;
    const bool wanted = forced ? *forced == a : m == 2;
    if (!wanted || !winograd_applies(w, p, backward_data)) continue;
    const GemmPlan wp = winograd_plan(m, x, w, y, p, backward_data);
    if (std::isfinite(wp.cycles) && (forced || wp.cycles < c.gemm.cycles)) c = {a, wp};
  }
  return c;
}

ConvPlan to_plan(const Choice& c) {
  ConvPlan p;
  p.algo = c.algo;
  const bool has_gemm = c.algo != ConvAlgo::DirectSmallCin && c.algo != ConvAlgo::Depthwise;
  if (has_gemm) {
    p.tile_m = c.gemm.bm(), p.tile_n = c.gemm.bn(), p.splits = c.gemm.splits;
    p.model_us = c.gemm.cycles / 1980.0;  // at 1.98 GHz
  }
  return p;
}

// With ENGINE_CUDA_CONV_LOG set, each (pass, shape) prints its plan once.
Choice plan_pass(ConvPass pass, const Geom& g, const Shape& x, const Shape& w, const Shape& y,
                 const Conv2dParams& p) {
  const Choice c = choose(pass, g, x, w, y, p);
  if (gemm::plan_log_enabled()) {
    static const char* kPass[] = {"forward", "backward data", "backward weight"};
    static std::mutex mu;
    static std::set<std::string> seen;
    char head[160];
    std::snprintf(head, sizeof head, "conv2d %s x %s w %s stride %lld pad %lld groups %lld: ",
                  kPass[static_cast<int>(pass)], shape_str(x).c_str(), shape_str(w).c_str(),
                  static_cast<long long>(p.stride_h), static_cast<long long>(p.pad_h),
                  static_cast<long long>(p.groups));
    const std::string line = head + conv_plan_str(to_plan(c));
    std::lock_guard<std::mutex> lock(mu);
    if (seen.insert(line).second) std::fprintf(stderr, "%s\n", line.c_str());
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// The kernel-table entries.

template <class Act>
void forward_gemm(const GemmPlan& plan, const Geom& g, const Tensor& x, const Tensor& w,
                  const Tensor& b, Tensor& y) {
  const Mnk d = gemm_dims(ConvPass::Forward, g);
  const ForwardInput a{fptr(x), g};
  const ForwardWeight wt{fptr(w), g.cout_g, static_cast<int>(d.k)};
  if (plan.splits == 1) {
    gemm::run_gemm(kLaunch, plan, a, wt, ForwardOutput<Act>{fptr(y), fptr(b), g}, d.m, d.n, d.k,
                   g.groups);
    return;
  }
  const int64_t numel = y.numel();
  Scratch part(sizeof(float) * plan.splits * numel);
  gemm::run_gemm(kLaunch, plan, a, wt,
                 ForwardOutput<NoActivation>{part.as<float>(), nullptr, g, numel}, d.m, d.n, d.k,
                 g.groups);
  sum_splits<Act>(part.as<float>(), plan.splits, numel, fptr(y), fptr(b), g.ohw, g.cout);
}

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  if (y.numel() == 0) return;
  const Geom g = conv_geom(x.shape(), w.shape(), y.shape(), p);
  const Choice c = plan_pass(ConvPass::Forward, g, x.shape(), w.shape(), y.shape(), p);
  if (c.algo == ConvAlgo::Winograd2 || c.algo == ConvAlgo::Winograd4)
    return winograd_forward(c.algo == ConvAlgo::Winograd2 ? 2 : 4, c.gemm, x, w, b, y, p);
  with_activation(p.activation, [&](auto act) {
    using Act = decltype(act);
    if (c.algo == ConvAlgo::Depthwise) {
      dim3 grid;
      const PlaneCover cover = plane_cover(int64_t{g.n} * g.cout, g.ohw, &grid);
      launch(g.kh == 3 && g.kw == 3 ? depthwise_forward_kernel<3, Act>
                                    : depthwise_forward_kernel<0, Act>,
             grid, kBlock, fptr(x), fptr(w), fptr(b), fptr(y), g, cover);
    } else if (c.algo == ConvAlgo::DirectSmallCin) {
      const dim3 grid(static_cast<unsigned>(ceil_div(int64_t{g.n} * g.ohw, kBlock)),
                      static_cast<unsigned>(ceil_div(g.cout, kSmallCo)));
      launch(small_cin_forward_kernel<Act>, grid, kBlock, fptr(x), fptr(w), fptr(b), fptr(y), g);
    } else {
      forward_gemm<Act>(c.gemm, g, x, w, b, y);
    }
  });
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  if (gx.numel() == 0) return;
  const Geom g = conv_geom(gx.shape(), w.shape(), gy.shape(), p);
  const Choice c = plan_pass(ConvPass::BackwardData, g, gx.shape(), w.shape(), gy.shape(), p);
  if (c.algo == ConvAlgo::Depthwise) {
    dim3 grid;
    const PlaneCover cover = plane_cover(int64_t{g.n} * g.cin, g.hw, &grid);
    launch(g.kh == 3 && g.kw == 3 ? depthwise_backward_data_kernel<3>
                                  : depthwise_backward_data_kernel<0>,
           grid, kBlock, fptr(gy), fptr(w), fptr(gx), g, cover);
    return;
  }
  if (c.algo == ConvAlgo::Winograd2 || c.algo == ConvAlgo::Winograd4)
    return winograd_backward_data(c.algo == ConvAlgo::Winograd2 ? 2 : 4, c.gemm, gy, w, gx, p);
  const Mnk d = gemm_dims(ConvPass::BackwardData, g);
  const int64_t numel = gx.numel();
  Scratch part(c.gemm.splits > 1 ? sizeof(float) * c.gemm.splits * numel : 0);
  float* out = c.gemm.splits > 1 ? part.as<float>() : fptr(gx);
  gemm::run_gemm(kLaunch, c.gemm, BackwardDataGradOutput{fptr(gy), g},
                 BackwardDataWeight{fptr(w), g}, BackwardDataOutput{out, g, numel}, d.m, d.n, d.k,
                 g.groups);
  if (c.gemm.splits > 1) sum_splits(out, c.gemm.splits, numel, fptr(gx));
}

void backward_weight_depthwise(const Tensor& gy, const Tensor& x, Tensor& gw, const Geom& g) {
  const int64_t k = int64_t{g.n} * g.ohw;
  const int splits = reduction_splits(g.cout, k);
  const int slice_k = static_cast<int>(ceil_div(k, splits));
  const int64_t numel = gw.numel();
  Scratch part(splits > 1 ? sizeof(float) * splits * numel : 0);
  float* out = splits > 1 ? part.as<float>() : fptr(gw);
  for (int tap0 = 0; tap0 < g.khw; tap0 += kTaps)
    launch(depthwise_backward_weight_kernel, dim3(g.cout, splits), kBlock, fptr(gy), fptr(x), out,
           g, tap0, slice_k);
  if (splits > 1) sum_splits(out, splits, numel, fptr(gw));
}

void backward_weight_gemm(const Tensor& gy, const Tensor& x, Tensor& gw, const Geom& g,
                          const GemmPlan& plan) {
  const Mnk d = gemm_dims(ConvPass::BackwardWeight, g);
  const int64_t numel = gw.numel();
  Scratch part(plan.splits > 1 ? sizeof(float) * plan.splits * numel : 0);
  float* out = plan.splits > 1 ? part.as<float>() : fptr(gw);
  gemm::run_gemm(
      kLaunch, plan, BackwardWeightGradOutput{fptr(gy), g}, BackwardWeightInput{fptr(x), g},
      BackwardWeightOutput{out, numel, g.cout_g, static_cast<int>(d.n)}, d.m, d.n, d.k, g.groups);
  if (plan.splits > 1) sum_splits(out, plan.splits, numel, fptr(gw));
}

void bias_grad(const Tensor& gy, Tensor& gb) {
  const int64_t n = gy.size(0), cout = gy.size(1), ohw = gy.size(2) * gy.size(3);
  ENGINE_CHECK(n * ohw < (int64_t{1} << 30) && cout * ohw < (int64_t{1} << 30),
               "conv2d (native CUDA): output gradient ", shape_str(gy.shape()),
               " exceeds the 2^30 extents of the index arithmetic");
  const int splits = reduction_splits(cout, n * ohw);
  const int slice_k = static_cast<int>(ceil_div(n * ohw, splits));
  Scratch part(splits > 1 ? sizeof(float) * splits * cout : 0);
  float* out = splits > 1 ? part.as<float>() : fptr(gb);
  launch(bias_grad_kernel, dim3(static_cast<unsigned>(cout), splits), kBlock, fptr(gy), out,
         static_cast<int>(n), static_cast<int>(cout), static_cast<int>(ohw), FastDivmod(ohw),
         slice_k);
  if (splits > 1) sum_splits(out, splits, cout, fptr(gb));
}

void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb,
                            const Conv2dParams& p) {
  const bool want_w = gw.defined() && gw.numel() > 0, want_b = gb.defined() && gb.numel() > 0;
  if (gy.numel() == 0) {  // an empty batch: empty sums, so zeros
    if (want_w) ENGINE_CUDA_CHECK(cudaMemsetAsync(fptr(gw), 0, gw.nbytes(), stream()));
    if (want_b) ENGINE_CUDA_CHECK(cudaMemsetAsync(fptr(gb), 0, gb.nbytes(), stream()));
    return;
  }
  if (want_w) {
    const Geom g = conv_geom(x.shape(), gw.shape(), gy.shape(), p);
    const Choice c = plan_pass(ConvPass::BackwardWeight, g, x.shape(), gw.shape(), gy.shape(), p);
    if (c.algo == ConvAlgo::Depthwise) {
      backward_weight_depthwise(gy, x, gw, g);
    } else {
      backward_weight_gemm(gy, x, gw, g, c.gemm);
    }
  }
  if (want_b) bias_grad(gy, gb);
}

}  // namespace

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::ImplicitGemm:
      return "implicit_gemm";
    case ConvAlgo::Winograd2:
      return "winograd2";
    case ConvAlgo::Winograd4:
      return "winograd4";
    case ConvAlgo::DirectSmallCin:
      return "direct_small_cin";
    case ConvAlgo::Depthwise:
      return "depthwise";
  }
  return "?";
}

std::string conv_plan_str(const ConvPlan& plan) {
  std::string s = conv_algo_name(plan.algo);
  if (plan.tile_m == 0) return s;
  char buf[96];
  std::snprintf(buf, sizeof buf, " tile %dx%d splits %d (model %.1f us)", plan.tile_m, plan.tile_n,
                plan.splits, plan.model_us);
  return s + buf;
}

ConvPlan conv2d_plan(ConvPass pass, const Shape& x, const Shape& w, const Conv2dParams& p) {
  ENGINE_CHECK(x.size() == 4 && w.size() == 4, "conv2d_plan: expected 4-d input and weight, got ",
               shape_str(x), " and ", shape_str(w));
  const int64_t oh = (x[2] + 2 * p.pad_h - p.dilation_h * (w[2] - 1) - 1) / p.stride_h + 1;
  const int64_t ow = (x[3] + 2 * p.pad_w - p.dilation_w * (w[3] - 1) - 1) / p.stride_w + 1;
  const Shape y = {x[0], w[0], oh, ow};
  const Geom g = conv_geom(x, w, y, p);
  return to_plan(choose(pass, g, x, w, y, p));
}

void register_conv2d(KernelTable& t) {
  t.conv2d_forward = conv2d_forward;
  t.conv2d_backward_data = conv2d_backward_data;
  t.conv2d_backward_weight = conv2d_backward_weight;
}

}  // namespace engine::cuda
