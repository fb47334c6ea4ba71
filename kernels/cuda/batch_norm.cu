// Native CUDA batch normalisation over x [N, C, *] (any trailing spatial dims, including none),
// matching kernels/cpu/batch_norm.cpp. Channel c's elements are N runs of S = prod(spatial)
// contiguous floats, run n starting at (n * C + c) * S.
//
// Every kernel here cuts each channel into B slices: the channel's N * S elements are dealt
// round-robin to B * 256 threads, in units of 4 floats (float4 loads and stores) when S % 4 == 0
// and the pointers are 16-byte aligned, else of 1; slice b is the share of threads b * 256 ..
// b * 256 + 255. The C * B (channel, slice) items form one flat list, item t = c * B + b, and the
// grid is one dimension of at most one resident wave (the kernel's occupancy times the SMs, from
// the occupancy API), each block looping over items t, t + gridDim.x, ... So no channel count
// overflows a grid dimension and no block count is assumed resident. B is the number of slices,
// up to the most that still gives each thread several units, that packs the items most evenly
// into waves of resident blocks: C = 32 (MobileNetV2's first layers, 800K elements per channel at
// batch 64) is cut into 33 slices for 1056 resident blocks, one full wave. Each item's sums
// depend only on (c, b, B), never on which block ran it, so results are deterministic.
//
// Training forward, three kernels:
//   1. channel_moments: per block, sums of d and d^2 with d = x - x_c0 (x_c0 = the channel's
//      first element), in double, folded with warp shuffles into one (sum d, sum d^2) per block.
//      Shifting by a sample of the channel makes the one-pass formula
//      ssd = sum d^2 - (sum d)^2 / m safe from cancellation (|mean - x_c0| is a few std, not
//      |mean|), and in double its error is ~1e-16 relative, far below the float result: it gives
//      the CPU's two-pass statistics to within the last float rounding, with one read of x.
//   2. finalize_moments: one warp per channel folds its B partials in a fixed order (so results
//      do not depend on scheduling), writes save_mean/save_invstd, updates the running stats
//      (unbiased variance) and the channel's (mean, scale, shift) for step 3.
//   3. normalise: y = (x - mean) * scale + shift, centred first as on the CPU.
// Eval forward: eval_coefficients (one thread per channel) then the same normalise kernel.
// Backward: channel_grad_sums (sum gy, sum gy * (x - mean), in double) and finalize_grad_sums
// (gw, gb and the coefficients of gx), then input_grad: gx = (gy - mean(gy)) * k - (x - mean) * kx.
//
// Bytes moved per element, as bench_cuda_ops counts them: training forward 12 (read x twice,
// write y; 8 when x stays in the 60 MB L2 between the passes), eval forward 8 (read x, write y),
// backward 20 (read gy and x twice, write gx). For [64, 32, 112, 112] (25.7M floats, 103 MB)
// training forward moves 308 MB, a 64 us ceiling at the H200's 4.8 TB/s, with ~4 double FLOPs
// per element (3 us of the H200's FP64 rate) and 2 float FLOPs; eval forward 205 MB (43 us);
// backward 515 MB (107 us). An [N, C] input (S = 1) is correct but uncoalesced: its units are C
// floats apart. Fraction of the copy bandwidth reached: not yet measured on a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

// ---- layout and the per-channel walk ----

struct Layout {
  int64_t n, c, s;  // batch, channels, elements per (sample, channel)
};

Layout layout(const Tensor& x) {
  Layout l{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.dim(); ++d) l.s *= x.size(d);
  return l;
}

// How the threads of one channel's slices cover it. A unit is K consecutive floats; channel c is
// n runs of s units, run i starting at unit (i * c_total + c) * s. Thread j of the channel (j =
// slice * blockDim.x + threadIdx.x) visits units j, j + stride, j + 2 stride, ... of the
// channel's n * s, stride = blocks * kBlock. The stride is split into (dn runs, ds units) on the
// host, so moving on is two adds and a carry, with no division per unit.
struct ChannelWalk {
  int64_t n, c, s;  // runs (the batch), channels, units per run
  int64_t dn, ds;   // stride = dn * s + ds
  int64_t blocks;   // slices per channel (B)
};

// Calls f(c, b) for the (channel, slice) items of this block: t = blockIdx.x, + gridDim.x, ...
// below C * B. The loop is uniform across the block, so block reductions inside f are safe.
template <class F>
__device__ __forceinline__ void for_each_item(const ChannelWalk& w, F&& f) {
  for (int64_t t = blockIdx.x; t < w.c * w.blocks; t += gridDim.x) f(t / w.blocks, t % w.blocks);
}

// Calls f(unit index into the tensor) for every unit of channel c that this thread owns in
// slice b.
template <class F>
__device__ __forceinline__ void for_each_unit(const ChannelWalk& w, int64_t c, int64_t b, F&& f) {
  const int64_t j = b * blockDim.x + threadIdx.x;
  int64_t n = j / w.s, s = j - n * w.s;
  while (n < w.n) {
    f((n * w.c + c) * w.s + s);
    n += w.dn;
    s += w.ds;
    if (s >= w.s) {
      s -= w.s;
      ++n;
    }
  }
}

// Slices per channel: of 1 .. (the most that leave each thread min_units units), the count whose
// C * B items fill waves of `resident` blocks most evenly (the fraction of the last wave used),
// the smallest on a tie.
ChannelWalk make_walk(const Layout& l, int k, int64_t min_units, int64_t resident) {
  ChannelWalk w{};
  w.n = l.n;
  w.c = l.c;
  w.s = l.s / k;
  const int64_t units = w.n * w.s;
  const int64_t by_work = std::max<int64_t>(1, units / (kBlock * min_units));
  double best = 0;
  for (int64_t b = 1; b <= std::min<int64_t>(by_work, 2 * resident); ++b) {
    const int64_t items = l.c * b, waves = (items + resident - 1) / resident;
    const double fill = static_cast<double>(items) / static_cast<double>(waves * resident);
    if (fill > best) best = fill, w.blocks = b;
    if (fill == 1.0) break;
  }
  const int64_t stride = w.blocks * kBlock;
  w.dn = stride / w.s;
  w.ds = stride % w.s;
  return w;
}

// At most one resident wave of Kernel's blocks, fewer when there are fewer items.
template <auto Kernel>
unsigned grid_of(const ChannelWalk& w) {
  return static_cast<unsigned>(std::min(w.c * w.blocks, resident_blocks<Kernel>()));
}

constexpr int64_t kReduceUnitsPerThread = 8;  // amortises the block reduction
constexpr int64_t kStreamUnitsPerThread = 4;  // element-wise passes: favour a full GPU

// K floats moved as one access (cuda_util.h's Chunk), addressed by unit.
template <int K>
__device__ __forceinline__ Chunk<K> load(const float* __restrict__ p, int64_t unit) {
  return load_chunk<K>(p, unit * K);
}

template <int K>
__device__ __forceinline__ void store(float* __restrict__ p, int64_t unit, const Chunk<K>& c) {
  store_chunk<K>(p, unit * K, c);
}

// ---- reductions ----

__device__ __forceinline__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Sums a and b over the block; the results are valid in thread 0. Ends with a barrier, so it can
// be called again in the same kernel. blockDim.x must be a multiple of 32.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double part_a[32], part_b[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane == 0) {
    part_a[warp] = a;
    part_b[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = static_cast<int>(blockDim.x >> 5);
    a = warp_sum(lane < warps ? part_a[lane] : 0.0);
    b = warp_sum(lane < warps ? part_b[lane] : 0.0);
  }
  __syncthreads();
}

// One warp per channel: folds the channel's `parts` partials (a, b) in a fixed order. Returns
// false for the warps past the last channel; the sums are valid in lane 0. The whole warp shares
// one channel, so the early exit never splits a warp before the shuffles.
__device__ bool fold_partials(const double2* partial, int parts, int64_t channels, int64_t& c,
                              double& a, double& b) {
  c = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) >> 5;
  if (c >= channels) return false;
  a = 0, b = 0;
  for (int i = threadIdx.x & 31; i < parts; i += 32) {
    const double2 p = partial[c * parts + i];
    a += p.x;
    b += p.y;
  }
  a = warp_sum(a);
  b = warp_sum(b);
  return true;
}

constexpr int kFoldBlock = 256;  // 8 channels (warps) per block
unsigned fold_grid(int64_t channels) {
  return static_cast<unsigned>((channels * 32 + kFoldBlock - 1) / kFoldBlock);
}

// ---- forward ----

// y = (x - mean) * scale + shift for one channel.
struct NormCoef {
  float mean, scale, shift;
};

// partial[c * B + b] = (sum d, sum d^2) over block b's share of channel c, d = x - x_c0.
template <int K>
__global__ void __launch_bounds__(kBlock)
    channel_moments_kernel(const float* __restrict__ x, ChannelWalk w,
                           double2* __restrict__ partial) {
  for_each_item(w, [&](int64_t c, int64_t b) {
    const double shift = x[c * w.s * K];  // the channel's first element (n = 0, position 0)
    double s1 = 0, s2 = 0;
    for_each_unit(w, c, b, [&](int64_t u) {
      const Chunk<K> v = load<K>(x, u);
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const double d = static_cast<double>(v.v[k]) - shift;
        s1 += d;
        s2 += d * d;
      }
    });
    block_sum2(s1, s2);
    if (threadIdx.x == 0) partial[c * w.blocks + b] = make_double2(s1, s2);
  });
}

// Per channel: mean and invstd from the partials, the saved and running statistics, and the
// normalise coefficients. Each value is computed in double and rounded once, as on the CPU.
__global__ void finalize_moments_kernel(const double2* partial, int parts, const float* x,
                                        int64_t channels, int64_t plane, double m, float eps,
                                        float momentum, const float* weight, const float* bias,
                                        float* save_mean, float* save_invstd, float* running_mean,
                                        float* running_var, NormCoef* coef) {
  int64_t c;
  double s1, s2;
  if (!fold_partials(partial, parts, channels, c, s1, s2) || (threadIdx.x & 31) != 0) return;
  const double mean_d = s1 / m;   // mean - x_c0
  double ssd = s2 - s1 * mean_d;  // sum (x - mean)^2
  if (ssd < 0) ssd = 0;           // rounding when the channel is constant; NaN stays NaN
  const double mean = static_cast<double>(x[c * plane]) + mean_d;
  const double invstd = 1.0 / sqrt(ssd / m + eps);
  save_mean[c] = static_cast<float>(mean);
  save_invstd[c] = static_cast<float>(invstd);
  // Running statistics track the unbiased variance, as PyTorch does.
  if (running_mean)
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
  if (running_var)
    running_var[c] =
        static_cast<float>((1.0 - momentum) * running_var[c] + momentum * ssd / (m - 1));
  coef[c] = NormCoef{static_cast<float>(mean),
                     static_cast<float>(invstd * (weight ? weight[c] : 1.0)), bias ? bias[c] : 0.f};
}

__global__ void eval_coefficients_kernel(const float* weight, const float* bias,
                                         const float* running_mean, const float* running_var,
                                         int64_t channels, float eps, NormCoef* coef) {
  // Grid-stride: grid_for caps the grid at kMaxBlocks * kBlock threads, fewer than C can be.
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < channels;
       c += int64_t{gridDim.x} * blockDim.x) {
    const double scale =
        (weight ? weight[c] : 1.0) / sqrt(static_cast<double>(running_var[c]) + eps);
    coef[c] = NormCoef{running_mean[c], static_cast<float>(scale), bias ? bias[c] : 0.f};
  }
}

// Centring first (rather than x * scale + (shift - mean * scale)) keeps the rounding relative to
// the normalised value, not to |mean| / std, as on the CPU.
template <int K>
__global__ void __launch_bounds__(kBlock)
    normalise_kernel(const float* __restrict__ x, float* __restrict__ y, ChannelWalk w,
                     const NormCoef* __restrict__ coef) {
  for_each_item(w, [&](int64_t c, int64_t b) {
    const NormCoef cf = coef[c];
    for_each_unit(w, c, b, [&](int64_t u) {
      Chunk<K> v = load<K>(x, u);
#pragma unroll
      for (int i = 0; i < K; ++i) v.v[i] = (v.v[i] - cf.mean) * cf.scale + cf.shift;
      store<K>(y, u, v);
    });
  });
}

template <int K>
void launch_normalise(const float* x, float* y, const Layout& l, const NormCoef* coef) {
  const ChannelWalk w =
      make_walk(l, K, kStreamUnitsPerThread, resident_blocks<normalise_kernel<K>>());
  normalise_kernel<K><<<grid_of<normalise_kernel<K>>(w), kBlock, 0, stream()>>>(x, y, w, coef);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

template <int K>
void forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                   Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                   Tensor& running_var, float momentum, float eps) {
  const Layout l = layout(x);
  const ChannelWalk w =
      make_walk(l, K, kReduceUnitsPerThread, resident_blocks<channel_moments_kernel<K>>());
  Scratch partial(sizeof(double2) * l.c * w.blocks);
  Scratch coef(sizeof(NormCoef) * l.c);
  channel_moments_kernel<K><<<grid_of<channel_moments_kernel<K>>(w), kBlock, 0, stream()>>>(
      fptr(x), w, partial.as<double2>());
  ENGINE_CUDA_CHECK(cudaGetLastError());
  finalize_moments_kernel<<<fold_grid(l.c), kFoldBlock, 0, stream()>>>(
      partial.as<double2>(), static_cast<int>(w.blocks), fptr(x), l.c, l.s,
      static_cast<double>(l.n * l.s), eps, momentum, fptr(weight), fptr(bias), fptr(save_mean),
      fptr(save_invstd), fptr(running_mean), fptr(running_var), coef.as<NormCoef>());
  ENGINE_CUDA_CHECK(cudaGetLastError());
  launch_normalise<K>(fptr(x), fptr(y), l, coef.as<NormCoef>());
}

void batch_norm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y,
                              Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps) {
  if (x.numel() == 0) return;
  if (layout(x).s % 4 == 0 && aligned16(fptr(x)) && aligned16(fptr(y)))
    forward_train<4>(x, weight, bias, y, save_mean, save_invstd, running_mean, running_var,
                     momentum, eps);
  else
    forward_train<1>(x, weight, bias, y, save_mean, save_invstd, running_mean, running_var,
                     momentum, eps);
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                             float eps) {
  if (x.numel() == 0) return;
  const Layout l = layout(x);
  Scratch coef(sizeof(NormCoef) * l.c);
  eval_coefficients_kernel<<<grid_for(l.c), kBlock, 0, stream()>>>(
      fptr(weight), fptr(bias), fptr(running_mean), fptr(running_var), l.c, eps,
      coef.as<NormCoef>());
  ENGINE_CUDA_CHECK(cudaGetLastError());
  if (l.s % 4 == 0 && aligned16(fptr(x)) && aligned16(fptr(y)))
    launch_normalise<4>(fptr(x), fptr(y), l, coef.as<NormCoef>());
  else
    launch_normalise<1>(fptr(x), fptr(y), l, coef.as<NormCoef>());
}

// ---- backward ----

// gx = (gy - gy_mean) * k - (x - mean) * kx for one channel.
struct GradCoef {
  float mean, k, gy_mean, kx;
};

// partial[c * B + b] = (sum gy, sum gy * (x - mean)) over block b's share of channel c.
template <int K>
__global__ void __launch_bounds__(kBlock)
    channel_grad_sums_kernel(const float* __restrict__ gy, const float* __restrict__ x,
                             const float* __restrict__ mean, ChannelWalk w,
                             double2* __restrict__ partial) {
  for_each_item(w, [&](int64_t c, int64_t b) {
    const double mu = mean[c];
    double sum_gy = 0, dot = 0;
    for_each_unit(w, c, b, [&](int64_t u) {
      const Chunk<K> g = load<K>(gy, u), v = load<K>(x, u);
#pragma unroll
      for (int k = 0; k < K; ++k) {
        sum_gy += g.v[k];
        dot += g.v[k] * (static_cast<double>(v.v[k]) - mu);
      }
    });
    block_sum2(sum_gy, dot);
    if (threadIdx.x == 0) partial[c * w.blocks + b] = make_double2(sum_gy, dot);
  });
}

// Per channel: gw = invstd * sum(gy * (x - mean)), gb = sum(gy) (each when wanted) and the gx
// coefficients, from the CPU's formulas term by term. parts = 0 when no sums are needed (eval
// mode, gx only): the sums are then zero and unused.
__global__ void finalize_grad_sums_kernel(const double2* partial, int parts, int64_t channels,
                                          double m, const float* weight, const float* mean,
                                          const float* invstd, bool training, float* gw, float* gb,
                                          GradCoef* coef) {
  int64_t c;
  double sum_gy, dot;
  if (!fold_partials(partial, parts, channels, c, sum_gy, dot) || (threadIdx.x & 31) != 0) return;
  const double mu = mean[c], is = invstd[c], w = weight ? weight[c] : 1.0;
  if (gw) gw[c] = static_cast<float>(dot * is);
  if (gb) gb[c] = static_cast<float>(sum_gy);
  if (!coef) return;
  coef[c] = GradCoef{static_cast<float>(mu), static_cast<float>(w * is),
                     training ? static_cast<float>(sum_gy / m) : 0.f,
                     training ? static_cast<float>(w * is * is * is * dot / m) : 0.f};
}

template <int K>
__global__ void __launch_bounds__(kBlock)
    input_grad_kernel(const float* __restrict__ gy, const float* __restrict__ x,
                      float* __restrict__ gx, ChannelWalk w, const GradCoef* __restrict__ coef) {
  for_each_item(w, [&](int64_t c, int64_t b) {
    const GradCoef cf = coef[c];
    for_each_unit(w, c, b, [&](int64_t u) {
      const Chunk<K> g = load<K>(gy, u), v = load<K>(x, u);
      Chunk<K> out;
#pragma unroll
      for (int i = 0; i < K; ++i)
        out.v[i] = (g.v[i] - cf.gy_mean) * cf.k - (v.v[i] - cf.mean) * cf.kx;
      store<K>(gx, u, out);
    });
  });
}

template <int K>
void backward(const Tensor& gy, const Tensor& x, const Tensor& weight, const Tensor& mean,
              const Tensor& invstd, bool training, Tensor& gx, Tensor& gw, Tensor& gb) {
  const Layout l = layout(x);
  const bool need_sums = training || gw.defined() || gb.defined();
  const ChannelWalk reduce =
      make_walk(l, K, kReduceUnitsPerThread, resident_blocks<channel_grad_sums_kernel<K>>());
  const int parts = need_sums ? static_cast<int>(reduce.blocks) : 0;
  Scratch partial(sizeof(double2) * l.c * std::max(parts, 1));
  Scratch coef(sizeof(GradCoef) * l.c);
  if (need_sums) {
    channel_grad_sums_kernel<K>
        <<<grid_of<channel_grad_sums_kernel<K>>(reduce), kBlock, 0, stream()>>>(
            fptr(gy), fptr(x), fptr(mean), reduce, partial.as<double2>());
    ENGINE_CUDA_CHECK(cudaGetLastError());
  }
  finalize_grad_sums_kernel<<<fold_grid(l.c), kFoldBlock, 0, stream()>>>(
      partial.as<double2>(), parts, l.c, static_cast<double>(l.n * l.s), fptr(weight), fptr(mean),
      fptr(invstd), training, fptr(gw), fptr(gb), gx.defined() ? coef.as<GradCoef>() : nullptr);
  ENGINE_CUDA_CHECK(cudaGetLastError());
  if (!gx.defined()) return;
  const ChannelWalk stream_walk =
      make_walk(l, K, kStreamUnitsPerThread, resident_blocks<input_grad_kernel<K>>());
  input_grad_kernel<K><<<grid_of<input_grad_kernel<K>>(stream_walk), kBlock, 0, stream()>>>(
      fptr(gy), fptr(x), fptr(gx), stream_walk, coef.as<GradCoef>());
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void batch_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& weight,
                         const Tensor& mean, const Tensor& invstd, bool training, Tensor& gx,
                         Tensor& gw, Tensor& gb) {
  if (x.numel() == 0) return;
  if (!gx.defined() && !gw.defined() && !gb.defined()) return;
  const bool vectorised = layout(x).s % 4 == 0 && aligned16(fptr(gy)) && aligned16(fptr(x)) &&
                          (!gx.defined() || aligned16(fptr(gx)));
  if (vectorised)
    backward<4>(gy, x, weight, mean, invstd, training, gx, gw, gb);
  else
    backward<1>(gy, x, weight, mean, invstd, training, gx, gw, gb);
}

}  // namespace

void register_batch_norm(KernelTable& t) {
  t.batch_norm_forward_train = batch_norm_forward_train;
  t.batch_norm_forward_eval = batch_norm_forward_eval;
  t.batch_norm_backward = batch_norm_backward;
}

}  // namespace engine::cuda
