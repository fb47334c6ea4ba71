// Native CUDA conv2d: conv2d_implicit_gemm for every convolution, conv2d_depthwise_direct for
// groups == Cin == Cout (MobileNetV2's depthwise layers). Plain FP32 FMA throughout (no TF32).
//
// conv2d_implicit_gemm. All three passes are one tiled GEMM kernel (`implicit_gemm`) whose operands
// are never materialised: an operand functor gathers element (k, r) of the virtual im2col matrix
// from the NCHW tensor on the fly (zero for padding and out-of-range indices), per group:
//   forward        y[m, co]  = sum_k  x_patch[k, m] * w[co, k]   M = N*OH*OW, Ncols = Cout/G,
//                                                                K = Cin/G*kH*kW (bias and
//                                                                activation in the epilogue)
//   backward data  gx[m, ci] = sum_k gy_patch[k, m] * w[co, ci, tap]   M = N*H*W, Ncols = Cin/G,
//                  K = (co, kh, kw) = Cout/G*kH*kW; gy_patch gathers gy[n, co, oh, ow] where
//                  oh*s = ih + p - kh*d (zero where that is not a multiple of the stride or out of
//                  range), so every gx element is written once (no atomics, no zeroing).
//   backward weight gw[co, j] = sum_k gy[k, co] * x_patch[k, j]   M = Cout/G, Ncols = Cin/G*kH*kW,
//                  K = N*OH*OW; split over K into a [splits, Cout, Cin/G*kH*kW] scratch and summed
//                  in a fixed order by a second kernel when the output alone has too few tiles to
//                  fill the GPU (the 3->32 first layer: 32 x 27 outputs, K = 262144 at batch 64).
// A block of 256 threads computes a BM x BN tile of C in K-steps of 8: both operand tiles are
// staged through shared memory, double-buffered (the next step's global loads are issued before
// the current step's FMAs), and each thread accumulates a TM x TN register micro-tile (8x8 in the
// 128x128 tile) from float4 reads of shared memory. The tile shape is chosen per problem from six
// (128x128, 128x64, 64x128, 256x32, 32x256, 64x64) by a model of waves x work per block, so the
// 32-channel first layer gets 256x32 tiles and the 1024-channel 16x16 layers 128x128.
// Grid: (M tiles, Ncols tiles, groups x splits).
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
// (channel, slice)), the same for both algorithms. Every reduction is deterministic: no float
// atomics anywhere.
//
// Work for typical shapes (batch 64): the study's 256->256 3x3 conv at 32x32 is 77.3 GFLOP per
// pass and moves ~136 MB (x, y 67 MB each, w 2.4 MB): compute bound, 1.15 ms at the H200's
// 67 TFLOP/s FP32. MobileNetV2's 144-channel 3x3 depthwise conv at 56x56 is 0.52 GFLOP and moves
// 231 MB: memory bound, 48 us at 4.8 TB/s. Fraction of the ceiling reached: not yet measured on a
// GPU.
// Registers (nvcc 13.0 -Xptxas -v, sm_90): __launch_bounds__(256, 2) caps implicit_gemm at 128;
// every instantiation fits without spilling except the 128x128 backward-weight one (40 bytes of
// spill loads, 24 of stack: its staging keeps 4 rows x 3 ints of x-patch state beside 64
// accumulators). To time on the GPU against 128x64 there (ENGINE_CUDA_CONV_TILE=128x64 forces it).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

// ---------------------------------------------------------------------------------------------
// Shared pieces.

// Every kernel of this file is launched through here: on the process stream, then checked.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  kernel<<<grid, block, 0, stream()>>>(args...);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int sm_count() {
  static const int n = [] {
    int dev = 0, count = 0;
    ENGINE_CUDA_CHECK(cudaGetDevice(&dev));
    ENGINE_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
    return count;
  }();
  return n;
}

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

// The forward epilogue's activation (Conv2dParams::activation), applied after the bias: a type,
// so each kernel is compiled for one and its store has no switch. act_forward is cuda_util.h's,
// the activation kernels' own.
struct NoActivation {
  __device__ __forceinline__ float operator()(float v) const { return v; }
};
template <Activation A>
struct WithActivation {
  __device__ __forceinline__ float operator()(float v) const { return act_forward<A>(v); }
};

// Calls f(act) with act the functor for a (NoActivation when a is empty).
template <class F>
void with_activation(const std::optional<Activation>& a, F&& f) {
  if (!a) return f(NoActivation{});
  switch (*a) {
    case Activation::ReLU:
      return f(WithActivation<Activation::ReLU>{});
    case Activation::ReLU6:
      return f(WithActivation<Activation::ReLU6>{});
    case Activation::Sigmoid:
      return f(WithActivation<Activation::Sigmoid>{});
    case Activation::Tanh:
      return f(WithActivation<Activation::Tanh>{});
  }
}

__device__ __forceinline__ bool inside(int i, int n) {
  return static_cast<unsigned>(i) < static_cast<unsigned>(n);  // 0 <= i < n
}

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

// out[i] = sum over s < splits of part[s*n + i], s in order.
__global__ void sum_splits_kernel(const float* part, int splits, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.f;
    for (int k = 0; k < splits; ++k) s += part[k * n + i];
    out[i] = s;
  }
}

void sum_splits(const float* part, int splits, int64_t n, float* out) {
  launch(sum_splits_kernel, grid_for(n), kBlock, part, splits, n, out);
}

// A reduction over K = N*OH*OW elements per channel runs as channels x splits blocks: enough
// splits to give every SM a few blocks, but at least kMinSliceK elements per block.
int reduction_splits(int64_t channels, int64_t k) {
  constexpr int64_t kMinSliceK = 4096;
  const int64_t want = ceil_div(4 * sm_count(), channels);
  return static_cast<int>(std::clamp<int64_t>(std::min(want, ceil_div(k, kMinSliceK)), 1, 65535));
}

// ---------------------------------------------------------------------------------------------
// The implicit GEMM: C[m, n] = sum_k A[k, m] * B[k, n], per group.
//
// An operand (A: R = M rows, B: R = Ncols rows) is a functor over its virtual K x R matrix:
//   static constexpr bool kRowContiguous;  // neighbouring rows are neighbouring addresses (else
//                                          // neighbouring k are): decides the staging map below
//   struct Row; Row row(int r) const;      // per-row state, decoded once per block tile
//   struct Col; Col col(int k) const;      // per-k state, decoded once per K-step
//   float load(Row, Col) const;            // the element, 0 outside (r >= R, k >= K, padding)
//   void bind(int group);                  // move the pointers to one group's slice
// The epilogue: Row row(int m) const; void store(Row, int n, float v) const;
// void bind(int group, int split).

constexpr int kGemmThreads = 256;
constexpr int kBK = 8;   // K-step; kGemmThreads / kBK = 32 rows staged per pass (see Stager)
constexpr int kPad = 4;  // shared row padding: keeps float4 alignment and makes the k-contiguous
                         // staging stores (4 rows x 8 k per warp) hit 32 distinct banks
// An index offset that drives every bounds check of a gather negative, even added to another one.
constexpr int kInvalid = -(1 << 29);
static_assert(kGemmThreads % kBK == 0 && kGemmThreads / kBK == 32, "a warp stages 32 rows");

template <int BM_, int BN_, int TM_, int TN_>
struct TileShape {
  static constexpr int BM = BM_, BN = BN_, TM = TM_, TN = TN_;
  static_assert((BM / TM) * (BN / TN) == kGemmThreads, "one micro-tile per thread");
  static_assert(BM % 32 == 0 && BN % 32 == 0 && TM % 4 == 0 && TN % 4 == 0, "float4 reads");
};

// Stages one operand's kBK x R tile per K-step: fetch() loads this thread's elements of it into
// registers, stash() writes them to shared memory. Which elements depends on the operand's layout,
// so that the loads of a warp are neighbouring addresses:
//   row-contiguous: a warp takes 32 neighbouring rows at one k (one 128-byte gather for a
//     stride-1 image); a thread keeps one Row for the whole tile and decodes E Cols per step;
//   k-contiguous: a warp takes 8 neighbouring k of 4 rows; a thread keeps E Rows and decodes one
//     Col per step.
template <class Op, int R, bool kRowContiguous = Op::kRowContiguous>
struct Stager;

template <class Op, int R>
struct Stager<Op, R, true> {
  static_assert(kGemmThreads % R == 0, "whole k rows per pass");
  static constexpr int E = R * kBK / kGemmThreads, kStep = kGemmThreads / R;
  int r, kk;
  typename Op::Row row;
  float v[E];
  __device__ Stager(const Op& op, int r0, int tid) : r(tid % R), kk(tid / R) {
    row = op.row(r0 + r);
  }
  __device__ void fetch(const Op& op, int k0) {
#pragma unroll
    for (int e = 0; e < E; ++e) v[e] = op.load(row, op.col(k0 + kk + e * kStep));
  }
  __device__ void stash(float (*tile)[R + kPad]) const {
#pragma unroll
    for (int e = 0; e < E; ++e) tile[kk + e * kStep][r] = v[e];
  }
};

template <class Op, int R>
struct Stager<Op, R, false> {
  static constexpr int E = R / 32;
  int r, kk;
  typename Op::Row rows[E];
  float v[E];
  __device__ Stager(const Op& op, int r0, int tid) : r(tid / kBK), kk(tid % kBK) {
#pragma unroll
    for (int e = 0; e < E; ++e) rows[e] = op.row(r0 + r + 32 * e);
  }
  __device__ void fetch(const Op& op, int k0) {
    const typename Op::Col c = op.col(k0 + kk);
#pragma unroll
    for (int e = 0; e < E; ++e) v[e] = op.load(rows[e], c);
  }
  __device__ void stash(float (*tile)[R + kPad]) const {
#pragma unroll
    for (int e = 0; e < E; ++e) tile[kk][r + 32 * e] = v[e];
  }
};

template <class T, class A, class B, class E>
__global__ void __launch_bounds__(kGemmThreads, 2)
    implicit_gemm(A a, B b, E e, int M, int N, int K, int k_chunk, int splits) {
  constexpr int BM = T::BM, BN = T::BN, TM = T::TM, TN = T::TN;
  // Micro-tile row i of a thread is at ty*4 + (i%4) + (i/4)*kStrideM within the block tile: float4
  // chunks spread over the tile, so the threads of a quarter-warp read consecutive float4s.
  constexpr int kStrideM = 4 * (BM / TM), kStrideN = 4 * (BN / TN);
  __shared__ __align__(16) float As[2][kBK][BM + kPad];
  __shared__ __align__(16) float Bs[2][kBK][BN + kPad];

  const int tid = threadIdx.x;
  const int group = blockIdx.z / splits, split = blockIdx.z % splits;
  a.bind(group);
  b.bind(group);
  e.bind(group, split);
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int k_begin = split * k_chunk, k_end = min(K, k_begin + k_chunk);

  Stager<A, BM> a_stage(a, m0, tid);
  Stager<B, BN> b_stage(b, n0, tid);
  auto fetch = [&](int k0) {  // global -> registers
    a_stage.fetch(a, k0);
    b_stage.fetch(b, k0);
  };
  auto stash = [&](int buf) {  // registers -> shared
    a_stage.stash(As[buf]);
    b_stage.stash(Bs[buf]);
  };

  // ty fastest within a warp: the epilogue's stores of neighbouring threads are neighbouring m,
  // which is neighbouring addresses in y and gx.
  const int ty = tid % (BM / TM), tx = tid / (BM / TM);
  float acc[TM][TN] = {};
  const int steps = k_end > k_begin ? (k_end - k_begin + kBK - 1) / kBK : 0;  // block-uniform
  if (steps > 0) {
    fetch(k_begin);
    stash(0);
  }
  __syncthreads();
  for (int s = 0; s < steps; ++s) {
    const int buf = s & 1;
    // Buffer buf^1 was last read in step s-1, which every thread finished before the barrier
    // that ended it; so one barrier per step suffices.
    if (s + 1 < steps) fetch(k_begin + (s + 1) * kBK);
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      float af[TM], bf[TN];
#pragma unroll
      for (int c = 0; c < TM / 4; ++c) {
        const float4 v = *reinterpret_cast<const float4*>(&As[buf][k][c * kStrideM + ty * 4]);
        af[4 * c] = v.x, af[4 * c + 1] = v.y, af[4 * c + 2] = v.z, af[4 * c + 3] = v.w;
      }
#pragma unroll
      for (int c = 0; c < TN / 4; ++c) {
        const float4 v = *reinterpret_cast<const float4*>(&Bs[buf][k][c * kStrideN + tx * 4]);
        bf[4 * c] = v.x, bf[4 * c + 1] = v.y, bf[4 * c + 2] = v.z, bf[4 * c + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
    }
    if (s + 1 < steps) stash(buf ^ 1);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + (i / 4) * kStrideM + ty * 4 + i % 4;
    if (m >= M) continue;
    const typename E::Row row = e.row(m);
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + (j / 4) * kStrideN + tx * 4 + j % 4;
      if (n < N) e.store(row, n, acc[i][j]);
    }
  }
}

// The tile shapes, in the order the planner prefers them on equal cost; with_tile_shape and
// kTileInfo index them in the same order.
using Tile128x128 = TileShape<128, 128, 8, 8>;
using Tile128x64 = TileShape<128, 64, 8, 4>;
using Tile64x128 = TileShape<64, 128, 4, 8>;
using Tile256x32 = TileShape<256, 32, 8, 4>;
using Tile32x256 = TileShape<32, 256, 4, 8>;
using Tile64x64 = TileShape<64, 64, 4, 4>;
constexpr int kNumTileShapes = 6;

template <class F>
void with_tile_shape(int shape, F&& f) {
  switch (shape) {
    case 0:
      return f(Tile128x128{});
    case 1:
      return f(Tile128x64{});
    case 2:
      return f(Tile64x128{});
    case 3:
      return f(Tile256x32{});
    case 4:
      return f(Tile32x256{});
    default:
      return f(Tile64x64{});
  }
}

struct TileInfo {
  int bm, bn, tm, tn;
};
template <class T>
constexpr TileInfo info_of() {
  return {T::BM, T::BN, T::TM, T::TN};
}
constexpr TileInfo kTileInfo[kNumTileShapes] = {info_of<Tile128x128>(), info_of<Tile128x64>(),
                                                info_of<Tile64x128>(),  info_of<Tile256x32>(),
                                                info_of<Tile32x256>(),  info_of<Tile64x64>()};

struct GemmPlan {
  int shape = 0, splits = 1, k_chunk = 0;
};

// ENGINE_CUDA_CONV_TILE=<BM>x<BN> (128x128, 128x64, 64x128, 256x32, 32x256 or 64x64) forces one
// tile shape, for tests and benchmarks; -1 when unset. Read on every call so tests can switch.
int forced_tile_shape() {
  const char* e = std::getenv("ENGINE_CUDA_CONV_TILE");
  if (e == nullptr || *e == '\0') return -1;
  for (int t = 0; t < kNumTileShapes; ++t)
    if (std::to_string(kTileInfo[t].bm) + "x" + std::to_string(kTileInfo[t].bn) == e) return t;
  ENGINE_CHECK(false, "ENGINE_CUDA_CONV_TILE=", e,
               ": expected 128x128, 128x64, 64x128, 256x32, 32x256 or 64x64");
  return -1;
}

// Picks the tile shape (and, when allowed, the K split) with the least modelled time:
// waves of blocks (two resident per SM) times the work of one block, the latter divided by the
// micro-tile's FMAs per shared-memory float read (8x8: 4, 8x4: 2.7, 4x4: 2). A split is only for
// filling the GPU: at most two waves of blocks in all, at least kMinSplitK of K per block, a
// scratch of at most kMaxScratch floats, and grid.z = groups*splits within its 65535 limit.
GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K, int64_t groups, bool allow_split) {
  constexpr int64_t kMinSplitK = 512, kMaxSplits = 256, kMaxScratch = int64_t{16} << 20;
  const double slots = 2.0 * sm_count();
  const int64_t max_splits =
      allow_split ? std::clamp<int64_t>(std::min(65535 / groups, kMaxScratch / (M * N * groups)), 1,
                                        kMaxSplits)
                  : 1;
  const int forced = forced_tile_shape();
  GemmPlan best;
  double best_cost = INFINITY;
  for (int t = 0; t < kNumTileShapes; ++t) {
    if (forced >= 0 && t != forced) continue;
    const TileInfo& s = kTileInfo[t];
    const int64_t tiles = ceil_div(M, s.bm) * ceil_div(N, s.bn) * groups;
    const double fma_per_read = double(s.tm * s.tn) / (s.tm + s.tn);
    for (int64_t splits = 1; splits <= max_splits; splits *= 2) {
      const int64_t chunk = ceil_div(ceil_div(K, splits), kBK) * kBK;
      if (splits > 1 && (chunk < kMinSplitK || tiles * splits > 2 * slots)) break;
      const double cost = std::ceil(tiles * splits / slots) * s.bm * s.bn * chunk / fma_per_read;
      if (cost < best_cost) best_cost = cost, best = {t, static_cast<int>(splits), int(chunk)};
    }
  }
  best.splits = static_cast<int>(ceil_div(K, best.k_chunk));  // no empty slices
  return best;
}

template <class A, class B, class E>
void run_gemm(const GemmPlan& plan, const A& a, const B& b, const E& e, int64_t M, int64_t N,
              int64_t K, int64_t groups) {
  with_tile_shape(plan.shape, [&](auto tile) {
    using T = decltype(tile);
    const dim3 grid(static_cast<unsigned>(ceil_div(M, T::BM)),
                    static_cast<unsigned>(ceil_div(N, T::BN)),
                    static_cast<unsigned>(groups * plan.splits));
    ENGINE_CHECK(grid.y <= 65535 && grid.z <= 65535, "conv2d (native CUDA): GEMM grid ", grid.x,
                 " x ", grid.y, " x ", grid.z, " exceeds the launch limits");
    launch(implicit_gemm<T, A, B, E>, grid, kGemmThreads, a, b, e, static_cast<int>(M),
           static_cast<int>(N), static_cast<int>(K), plan.k_chunk, plan.splits);
  });
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

// Writes y = act(v + bias); Act is NoActivation or WithActivation<A> (the fused epilogue).
template <class Act>
struct ForwardOutput {
  float* y;
  const float* bias;  // may be null
  Geom g;
  struct Row {
    int64_t offset;  // n*Cout*OH*OW + oh*OW + ow
  };
  __device__ void bind(int group, int) {
    y += int64_t{group} * g.cout_g * g.ohw;
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

struct BackwardDataOutput {
  float* gx;
  Geom g;
  struct Row {
    int64_t offset;  // n*Cin*H*W + ih*W + iw
  };
  __device__ void bind(int group, int) { gx += int64_t{group} * g.cin_g * g.hw; }
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
// The kernel-table entries.

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  if (y.numel() == 0) return;
  const Geom g = conv_geom(x.shape(), w.shape(), y.shape(), p);
  with_activation(p.activation, [&](auto act) {
    using Act = decltype(act);
    if (is_depthwise(g)) {
      dim3 grid;
      const PlaneCover cover = plane_cover(int64_t{g.n} * g.cout, g.ohw, &grid);
      launch(g.kh == 3 && g.kw == 3 ? depthwise_forward_kernel<3, Act>
                                    : depthwise_forward_kernel<0, Act>,
             grid, kBlock, fptr(x), fptr(w), fptr(b), fptr(y), g, cover);
      return;
    }
    const int64_t M = int64_t{g.n} * g.ohw, N = g.cout_g, K = int64_t{g.cin_g} * g.khw;
    const GemmPlan plan = plan_gemm(M, N, K, g.groups, false);
    run_gemm(plan, ForwardInput{fptr(x), g}, ForwardWeight{fptr(w), g.cout_g, static_cast<int>(K)},
             ForwardOutput<Act>{fptr(y), fptr(b), g}, M, N, K, g.groups);
  });
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  if (gx.numel() == 0) return;
  const Geom g = conv_geom(gx.shape(), w.shape(), gy.shape(), p);
  if (is_depthwise(g)) {
    dim3 grid;
    const PlaneCover cover = plane_cover(int64_t{g.n} * g.cin, g.hw, &grid);
    launch(g.kh == 3 && g.kw == 3 ? depthwise_backward_data_kernel<3>
                                  : depthwise_backward_data_kernel<0>,
           grid, kBlock, fptr(gy), fptr(w), fptr(gx), g, cover);
    return;
  }
  const int64_t M = int64_t{g.n} * g.hw, N = g.cin_g, K = int64_t{g.cout_g} * g.khw;
  const GemmPlan plan = plan_gemm(M, N, K, g.groups, false);
  run_gemm(plan, BackwardDataGradOutput{fptr(gy), g}, BackwardDataWeight{fptr(w), g},
           BackwardDataOutput{fptr(gx), g}, M, N, K, g.groups);
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

void backward_weight_gemm(const Tensor& gy, const Tensor& x, Tensor& gw, const Geom& g) {
  const int64_t M = g.cout_g, N = int64_t{g.cin_g} * g.khw, K = int64_t{g.n} * g.ohw;
  const GemmPlan plan = plan_gemm(M, N, K, g.groups, true);
  const int64_t numel = gw.numel();
  Scratch part(plan.splits > 1 ? sizeof(float) * plan.splits * numel : 0);
  float* out = plan.splits > 1 ? part.as<float>() : fptr(gw);
  run_gemm(plan, BackwardWeightGradOutput{fptr(gy), g}, BackwardWeightInput{fptr(x), g},
           BackwardWeightOutput{out, numel, g.cout_g, static_cast<int>(N)}, M, N, K, g.groups);
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
    if (is_depthwise(g)) {
      backward_weight_depthwise(gy, x, gw, g);
    } else {
      backward_weight_gemm(gy, x, gw, g);
    }
  }
  if (want_b) bias_grad(gy, gb);
}

}  // namespace

void register_conv2d(KernelTable& t) {
  t.conv2d_forward = conv2d_forward;
  t.conv2d_backward_data = conv2d_backward_data;
  t.conv2d_backward_weight = conv2d_backward_weight;
}

}  // namespace engine::cuda
