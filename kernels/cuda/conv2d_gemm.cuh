// The implicit-GEMM core shared by conv2d.cu (all three passes), conv2d_winograd.cu (the batched
// products of the transformed tiles) and linear.cu (all three products), and its planner.
//
// implicit_gemm computes C[m, n] = sum_k A[k, m] * B[k, n] per group (grid.z = groups x splits).
// Operands are never materialised: an operand functor gathers element (k, r) of its virtual
// K x R matrix (A: R = M rows, B: R = N rows) on the fly, zero outside:
//   static constexpr bool kRowContiguous;  // neighbouring rows are neighbouring addresses (else
//                                          // neighbouring k are): decides the staging map below
//   struct Row; Row row(int r) const;      // per-row state, decoded once per block tile
//   struct Col; Col col(int k) const;      // per-k state, decoded once per K-step
//   float load(Row, Col) const;            // the element, 0 outside (r >= R, k >= K, padding)
//   void bind(int group);                  // move the pointers to one group's slice
// The epilogue: Row row(int m) const; void store(Row, int n, float v) const;
// void bind(int group, int split).
// A block of 256 threads computes a BM x BN tile of C in K-steps of 8: both operand tiles are
// staged through shared memory, double-buffered (the next step's global loads are issued before
// the current step's FMAs), and each thread accumulates a TM x TN register micro-tile (8x8 in the
// 128x128 tile) from float4 reads of shared memory. Six tile shapes (128x128, 128x64, 64x128,
// 256x32, 32x256, 64x64).
//
// plan_gemm picks the tile shape and the split of K (any count, not only powers of two) with the
// least modelled time: whole waves of blocks (SM count x the resident blocks per SM that
// cudaOccupancyMaxActiveBlocksPerMultiprocessor reports for that very instantiation) times the
// work of one block (BM x BN x its K slice, over the micro-tile's FMAs per shared-memory read),
// plus, for a split, the bytes of the partial sums written and read again and one more launch.
// The split slices are summed afterwards in a fixed order by the caller (no float atomics), so
// results are deterministic. The model's constants are an H200's datasheet figures; the choices
// it makes have not been timed on a GPU.
//
// Environment, read on every call so that tests can switch: ENGINE_CUDA_CONV_TILE=<BM>x<BN>
// forces a tile shape, ENGINE_CUDA_CONV_SPLITS=<n> a split count (reduced where a slice would be
// empty), for conv2d and linear alike; ENGINE_CUDA_CONV_LOG=1 prints each plan to stderr.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "kernels/cuda/cuda_util.h"

// translate.py (tests/cuda_emu) marks the __shared__ arrays of .cu files so the emulator fills
// them with NaNs per block; this header's kernels mark their own.
#ifdef ENGINE_CUDA_EMU
#define ENGINE_GEMM_SHARED_FRESH(v) ::emu::shared_fresh(&(v), sizeof(v))
#else
#define ENGINE_GEMM_SHARED_FRESH(v) ((void)0)
#endif

namespace engine::cuda::gemm {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The multiprocessor count (cuda_util.h's, read once).
inline int sm_count() { return multiprocessor_count(); }

__device__ __forceinline__ bool inside(int i, int n) {
  return static_cast<unsigned>(i) < static_cast<unsigned>(n);  // 0 <= i < n
}

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
  ENGINE_GEMM_SHARED_FRESH(As);
  ENGINE_GEMM_SHARED_FRESH(Bs);

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

// A forward epilogue's activation (Conv2dParams::activation), applied after the bias: a type,
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

// Resident blocks per SM of implicit_gemm<T, A, B, E> for each tile shape T, asked once per
// operand combination (registers and shared memory differ between instantiations).
struct Occupancy {
  int blocks[kNumTileShapes];
};
template <class A, class B, class E>
const Occupancy& occupancy() {
  static const Occupancy occ = [] {
    Occupancy o{};
    for (int t = 0; t < kNumTileShapes; ++t)
      with_tile_shape(t, [&](auto tile) {
        using T = decltype(tile);
        ENGINE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &o.blocks[t], implicit_gemm<T, A, B, E>, kGemmThreads, 0));
        o.blocks[t] = std::max(o.blocks[t], 1);
      });
    return o;
  }();
  return occ;
}

struct GemmPlan {
  int shape = 0, splits = 1, k_chunk = 0;
  double cycles = 0;  // the model's time, in SM clock cycles
  int bm() const { return kTileInfo[shape].bm; }
  int bn() const { return kTileInfo[shape].bn; }
};

// The model's device (an H200's datasheet figures): FP32 FMAs per SM per cycle, bytes of DRAM
// traffic per cycle for the whole device (4.8 TB/s at 1.98 GHz) and the cost of one more launch.
constexpr double kFmaPerCycle = 128, kBytesPerCycle = 2400, kLaunchCycles = 4000;

// Which tile shape and split the environment forces (-1 / 0 when unset).
inline int forced_tile_shape() {
  const char* e = std::getenv("ENGINE_CUDA_CONV_TILE");
  if (e == nullptr || *e == '\0') return -1;
  for (int t = 0; t < kNumTileShapes; ++t)
    if (std::to_string(kTileInfo[t].bm) + "x" + std::to_string(kTileInfo[t].bn) == e) return t;
  ENGINE_CHECK(false, "ENGINE_CUDA_CONV_TILE=", e,
               ": expected 128x128, 128x64, 64x128, 256x32, 32x256 or 64x64");
  return -1;
}
inline int forced_splits() {
  const char* e = std::getenv("ENGINE_CUDA_CONV_SPLITS");
  if (e == nullptr || *e == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(e, &end, 10);
  ENGINE_CHECK(*end == '\0' && n >= 1 && n <= 65535, "ENGINE_CUDA_CONV_SPLITS=", e,
               ": expected a split count from 1 to 65535");
  return static_cast<int>(n);
}
inline bool plan_log_enabled() {
  const char* e = std::getenv("ENGINE_CUDA_CONV_LOG");
  return e != nullptr && *e != '\0' && std::string(e) != "0";
}

// The modelled cycles of one tile shape and split count; infinity where the split is not allowed.
// A split must leave at least kMinSplitK of K per block (else the prologue and the partial tile
// outweigh the slice), keep its scratch within kMaxScratch floats and grid.z within 65535.
inline double gemm_cycles(int64_t M, int64_t N, int64_t K, int64_t groups, int t, int splits,
                          int occ, bool forced, int* k_chunk) {
  constexpr int64_t kMinSplitK = 256, kMaxScratch = int64_t{64} << 20;
  const TileInfo& s = kTileInfo[t];
  const int64_t chunk = ceil_div(ceil_div(std::max<int64_t>(K, 1), splits), kBK) * kBK;
  *k_chunk = static_cast<int>(chunk);
  if (splits > 1 && (groups * splits > 65535 ||
                     (!forced && (chunk < kMinSplitK || splits * M * N * groups > kMaxScratch))))
    return INFINITY;
  const int64_t blocks = ceil_div(M, s.bm) * ceil_div(N, s.bn) * groups * splits;
  const double waves = std::ceil(double(blocks) / (double(sm_count()) * occ));
  // A micro-tile does tm*tn FMAs per tm+tn shared reads: the 8x8 one runs at the FMA rate, the
  // thinner ones are held back by shared-memory bandwidth in proportion.
  const double efficiency = double(s.tm * s.tn) / (s.tm + s.tn) / 4.0;
  double cycles = waves * s.bm * s.bn * double(chunk) * occ / (kFmaPerCycle * efficiency);
  if (splits > 1) cycles += 2.0 * splits * M * N * groups * 4 / kBytesPerCycle + kLaunchCycles;
  return cycles;
}

// The least-cost (tile shape, split) for C[M, N] = A B with K-deep sums, in `groups` groups.
inline GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K, int64_t groups, const Occupancy& occ) {
  const int tile = forced_tile_shape(), want_splits = forced_splits();
  GemmPlan best;
  best.cycles = INFINITY;
  for (int t = 0; t < kNumTileShapes; ++t) {
    if (tile >= 0 && t != tile) continue;
    // Past two waves' worth of blocks a split only adds waves and partial sums: the search
    // stops there (and at 1024), which keeps it to microseconds for K in the millions.
    const int64_t tiles = ceil_div(M, kTileInfo[t].bm) * ceil_div(N, kTileInfo[t].bn) * groups;
    const int64_t useful = ceil_div(2 * int64_t{sm_count()} * occ.blocks[t], tiles);
    const int first = want_splits ? want_splits : 1;
    const int last = want_splits
                         ? want_splits
                         : static_cast<int>(std::min({useful, ceil_div(K, kBK), int64_t{1024}}));
    for (int splits = first; splits <= std::max(first, last); ++splits) {
      int chunk = 0;
      const double c = gemm_cycles(M, N, K, groups, t, splits, occ.blocks[t], want_splits, &chunk);
      if (c < best.cycles) best = {t, splits, chunk, c};
    }
  }
  ENGINE_CHECK(best.cycles < INFINITY, "conv2d/linear (native CUDA): no GEMM plan for M ", M,
               ", N ", N, ", K ", K, " in ", groups, " groups");
  best.splits = static_cast<int>(ceil_div(std::max<int64_t>(K, 1), best.k_chunk));  // none empty
  return best;
}

// Launches implicit_gemm for `plan`; launch_fn(kernel, grid, block, args...) is the calling .cu
// file's launcher (which holds the <<<>>> that tests/cuda_emu/translate.py rewrites).
template <class Launch, class A, class B, class E>
void run_gemm(Launch&& launch_fn, const GemmPlan& plan, const A& a, const B& b, const E& e,
              int64_t M, int64_t N, int64_t K, int64_t groups) {
  with_tile_shape(plan.shape, [&](auto tile) {
    using T = decltype(tile);
    const dim3 grid(static_cast<unsigned>(ceil_div(M, T::BM)),
                    static_cast<unsigned>(ceil_div(N, T::BN)),
                    static_cast<unsigned>(groups * plan.splits));
    ENGINE_CHECK(grid.y <= 65535 && grid.z <= 65535, "native CUDA GEMM: grid ", grid.x, " x ",
                 grid.y, " x ", grid.z, " exceeds the launch limits");
    launch_fn(implicit_gemm<T, A, B, E>, grid, dim3(kGemmThreads), a, b, e, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), plan.k_chunk, plan.splits);
  });
}

}  // namespace engine::cuda::gemm
