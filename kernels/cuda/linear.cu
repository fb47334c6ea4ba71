// Native CUDA linear layer. One tiled SGEMM, C[M, N] = A[M, K] B[K, N] (+ bias over columns),
// serves all three products; the operands differ only in which index is contiguous in memory:
//   forward          y[n, out] = x[n, in] w[out, in]^T + b   A = x, B = w^T: both K-contiguous
//   backward data    gx[n, in] = gy[n, out] w[out, in]       A = gy K-, B = w N-contiguous
//   backward weight  gw[out, in] = gy[n, out]^T x[n, in]     A = gy^T M-, B = x N-contiguous
// and gb = the column sums of gy, one thread per column summing rows in order (the CPU's order,
// so gb matches it bit for bit).
//
// SGEMM: a 256-thread block computes a 64x64 tile of C, walking K in steps of 8. Both 64x8 operand
// tiles are staged in shared memory k-major, so the 4 rows (of A) and 4 columns (of B) a thread
// needs at one k are one float4 each; each thread holds a 4x4 micro-tile of accumulators in
// registers, so a k step is 2 shared loads for 16 FMAs. The next step's tiles are fetched into
// registers while the current ones are multiplied (two shared buffers, one barrier per step).
// Elements outside [0, M) x [0, K) (resp. [0, K) x [0, N)) are read as zero, which is how any M,
// N, K (1, primes) is handled. Which index is contiguous is a template flag of the tile loader.
// Split-K: when C has fewer tiles than two per SM (the study's fc1, M = 64, N = 256, K = 65536, has
// 4), blockIdx.z takes one K range and writes its partial tile to scratch; a second kernel sums
// the partials in a fixed order and adds the bias: deterministic, no atomics.
// Plain FP32 FMA (no TF32). fc1 forward, [64, 65536] x [65536, 256]: 2.1 GFLOP and 84 MB read
// (w is 67 MB), a 32 us compute ceiling at the H200's 67 TFLOP/s FP32 (17 us for the memory).
// Fraction of the ceiling reached: not yet measured on a GPU.
#include <algorithm>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 8;
constexpr int kThreads = 256;  // 16 x 16 threads, each a kMicro x kMicro micro-tile
constexpr int kMicro = 4;
// A row of a shared tile holds 64 values plus 4 of padding: the transposing stores of the
// K-contiguous loader then hit 32 different banks, and rows stay 16-byte aligned for float4.
constexpr int kPitch = kTileM + 4;
static_assert(kTileM == kTileN, "one loader serves both operands");
static_assert(kThreads == (kTileM / kMicro) * (kTileN / kMicro), "one micro-tile per thread");
static_assert(kThreads * 2 == kTileM * kTileK, "each thread moves two elements of each tile");

using SmemTile = float[kTileK][kPitch];

// One operand of the product, X(r, k) for r a row of C (operand A) or a column of C (operand B):
// stored at x[r * ld + k] when kContig (K-contiguous), else at x[k * ld + r]. Per K step each
// thread moves the two elements (k_, r_) and (k_, r_ + 32) of the 64 x 8 tile. The
// thread-to-element map runs along the contiguous direction, so a warp's global loads are coalesced
// (8 consecutive floats of 4 rows, or 32 consecutive floats of one k) and its store into the
// k-major shared tile is free of bank conflicts.
template <bool kContig>
struct TileLoader {
  const float* x;
  int64_t ld, rows, k_end, r0;  // r0: the tile's first row; rows, k_end: the bounds to zero-fill
  int k_, r_;

  __device__ TileLoader(const float* x_, int64_t ld_, int64_t rows_, int64_t k_end_, int64_t r0_)
      : x(x_),
        ld(ld_),
        rows(rows_),
        k_end(k_end_),
        r0(r0_),
        k_(kContig ? threadIdx.x % kTileK : threadIdx.x / 32),
        r_(kContig ? threadIdx.x / kTileK : threadIdx.x % 32) {}

  __device__ void fetch(int64_t k0, float (&v)[2]) const {
    const int64_t k = k0 + k_;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t r = r0 + r_ + 32 * j;
      v[j] = r < rows && k < k_end ? x[kContig ? r * ld + k : k * ld + r] : 0.f;
    }
  }

  __device__ void store(SmemTile& t, const float (&v)[2]) const {
    t[k_][r_] = v[0];
    t[k_][r_ + 32] = v[1];
  }
};

// C tile (blockIdx.x, blockIdx.y) over the K range [blockIdx.z * k_chunk, + k_chunk) of
// C[m, n] = A B. Output z goes to c + z * m * n (one partial product per split; with one split
// that is C itself). bias (length n, may be null) is added in the epilogue.
template <bool kAContig, bool kBContig>
__global__ void __launch_bounds__(kThreads)
    sgemm_kernel(const float* __restrict__ a, int64_t lda, const float* __restrict__ b, int64_t ldb,
                 int64_t m, int64_t n, int64_t k, int64_t k_chunk, const float* __restrict__ bias,
                 float* __restrict__ c) {
  __shared__ __align__(16) SmemTile as[2];
  __shared__ __align__(16) SmemTile bs[2];
  const int64_t m0 = int64_t{blockIdx.x} * kTileM, n0 = int64_t{blockIdx.y} * kTileN;
  const int64_t k_begin = int64_t{blockIdx.z} * k_chunk;
  const int64_t k_end = min(k, k_begin + k_chunk);
  const TileLoader<kAContig> load_a(a, lda, m, k_end, m0);
  const TileLoader<kBContig> load_b(b, ldb, n, k_end, n0);
  // This thread's micro-tile: rows tm..tm+3 and columns tn..tn+3 of the block tile.
  const int tm = threadIdx.x / (kTileN / kMicro) * kMicro;
  const int tn = threadIdx.x % (kTileN / kMicro) * kMicro;

  float acc[kMicro][kMicro] = {};
  float ra[2], rb[2];
  load_a.fetch(k_begin, ra);
  load_b.fetch(k_begin, rb);
  load_a.store(as[0], ra);
  load_b.store(bs[0], rb);
  __syncthreads();

  int buf = 0;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
    // Uniform across the block, so the barrier below is reached by every thread.
    const bool more = k0 + kTileK < k_end;
    if (more) {  // global loads in flight during the FMAs below
      load_a.fetch(k0 + kTileK, ra);
      load_b.fetch(k0 + kTileK, rb);
    }
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&as[buf][kk][tm]);
      const float4 bv = *reinterpret_cast<const float4*>(&bs[buf][kk][tn]);
      const float ar[kMicro] = {av.x, av.y, av.z, av.w};
      const float br[kMicro] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < kMicro; ++i)
#pragma unroll
        for (int j = 0; j < kMicro; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    // The other buffer was last read in the previous step, before its closing barrier.
    if (more) {
      load_a.store(as[buf ^ 1], ra);
      load_b.store(bs[buf ^ 1], rb);
    }
    __syncthreads();
    buf ^= 1;
  }

  float* out = c + int64_t{blockIdx.z} * m * n;
#pragma unroll
  for (int i = 0; i < kMicro; ++i) {
    const int64_t row = m0 + tm + i;
    if (row >= m) break;
#pragma unroll
    for (int j = 0; j < kMicro; ++j) {
      const int64_t col = n0 + tn + j;
      if (col < n) out[row * n + col] = bias ? acc[i][j] + bias[col] : acc[i][j];
    }
  }
}

// c[i] = sum over the splits, in order, of partial[z][i] (+ bias of i's column).
__global__ void sum_splits_kernel(const float* __restrict__ partial, int splits, int64_t m,
                                  int64_t n, const float* __restrict__ bias,
                                  float* __restrict__ c) {
  const int64_t mn = m * n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < mn;
       i += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.f;
    for (int z = 0; z < splits; ++z) s += partial[z * mn + i];
    c[i] = bias ? s + bias[i % n] : s;
  }
}

// out[j] = sum_r g[r, j], rows in order. Threads run along j, so each row's read is coalesced.
__global__ void column_sums_kernel(const float* __restrict__ g, int64_t rows, int64_t cols,
                                   float* __restrict__ out) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < cols;
       j += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.f;
    for (int64_t r = 0; r < rows; ++r) s += g[r * cols + j];
    out[j] = s;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int sm_count() {
  static const int count = [] {
    int dev = 0, n = 0;
    ENGINE_CUDA_CHECK(cudaGetDevice(&dev));
    ENGINE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  }();
  return count;
}

// Each split covers at least this many K steps, so that its partial tile (written once, read
// once) costs little next to the operand tiles it streams.
constexpr int64_t kMinStepsPerSplit = 16;

struct SplitK {
  int splits;
  int64_t k_chunk;  // a multiple of kTileK, so splits meet at tile boundaries
};

// Enough splits for about two blocks per SM, none shorter than kMinStepsPerSplit K steps, and
// none empty.
SplitK choose_split(int64_t tiles, int64_t k) {
  const int64_t target = 2 * int64_t{sm_count()};
  const int64_t steps = ceil_div(k, kTileK);
  if (tiles >= target || steps < 2 * kMinStepsPerSplit) return {1, k};
  const int64_t want = std::min(ceil_div(target, tiles), steps / kMinStepsPerSplit);
  const int64_t chunk_steps = ceil_div(steps, want);
  return {static_cast<int>(ceil_div(steps, chunk_steps)), chunk_steps * kTileK};
}

// C[m, n] = A B (+ bias); A(i, k) at a[i * lda + k] when kAContig else a[k * lda + i], B(k, j) at
// b[j * ldb + k] when kBContig else b[k * ldb + j]. C is overwritten.
template <bool kAContig, bool kBContig>
void sgemm(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t m, int64_t n,
           int64_t k, const float* bias, float* c) {
  if (m == 0 || n == 0) return;
  const int64_t tiles_m = ceil_div(m, kTileM), tiles_n = ceil_div(n, kTileN);
  ENGINE_CHECK(tiles_n <= 65535, "linear (CUDA): ", n, " output columns exceed the grid's ",
               65535 * kTileN);
  const SplitK split = choose_split(tiles_m * tiles_n, k);
  const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n),
                  static_cast<unsigned>(split.splits));
  if (split.splits == 1) {
    sgemm_kernel<kAContig, kBContig>
        <<<grid, kThreads, 0, stream()>>>(a, lda, b, ldb, m, n, k, split.k_chunk, bias, c);
    ENGINE_CUDA_CHECK(cudaGetLastError());
    return;
  }
  // Freed at scope exit while the kernels may still be queued: safe, as every user of the
  // allocator runs on the same stream.
  Scratch partial(sizeof(float) * static_cast<size_t>(split.splits * m * n));
  sgemm_kernel<kAContig, kBContig><<<grid, kThreads, 0, stream()>>>(
      a, lda, b, ldb, m, n, k, split.k_chunk, nullptr, partial.as<float>());
  ENGINE_CUDA_CHECK(cudaGetLastError());
  sum_splits_kernel<<<grid_for(m * n), kBlock, 0, stream()>>>(partial.as<float>(), split.splits, m,
                                                              n, bias, c);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  sgemm<true, true>(fptr(x), in, fptr(w), in, rows, out, in, fptr(b), fptr(y));
}

void linear_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx) {
  const int64_t rows = gy.size(0), out = w.size(0), in = w.size(1);
  sgemm<true, false>(fptr(gy), out, fptr(w), in, rows, in, out, nullptr, fptr(gx));
}

void linear_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb) {
  const int64_t rows = gy.size(0), out = gy.size(1), in = x.size(1);
  if (gw.defined())
    sgemm<false, false>(fptr(gy), out, fptr(x), in, out, in, rows, nullptr, fptr(gw));
  if (gb.defined() && out > 0) {
    column_sums_kernel<<<grid_for(out), kBlock, 0, stream()>>>(fptr(gy), rows, out, fptr(gb));
    ENGINE_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace

void register_linear(KernelTable& t) {
  t.linear_forward = linear_forward;
  t.linear_backward_data = linear_backward_data;
  t.linear_backward_weight = linear_backward_weight;
}

}  // namespace engine::cuda
