// Native CUDA softmax cross-entropy, the semantics of kernels/cpu/loss.cpp (PyTorch 1.13's
// F.cross_entropy, mean reduction, optional class weights w and label smoothing e; the formulas are
// in that file's opening comment), in the same precision: float exponentials, double sums.
// Forward: one block per row of logits [N, C]: a max reduction, p = exp(z - max) with the row
// sum in double, p /= sum, then the row's loss term and target weight, written to scratch; a
// second, single-block kernel sums the N terms and weights (double) and writes loss = total / W.
// Every reduction is a fixed tree (warp butterflies, then one warp over the warp results), so the
// result does not depend on scheduling. Backward: one single-block kernel forms the two scalars
// of the gradient (scale = grad_loss / W and e/C * S, S = sum(w)), then one block per row writes
// dz[i, j] = scale * (((1-e) w[t_i] + e/C S) p[i, j] - e/C w[j]) - scale (1-e) w[t_i] [j == t_i].
// Targets are checked on the host by the op; a bad one still never indexes outside a row here
// (its row's loss term, and its row of the gradient, become NaN).
// The study's [8, 6] is launch-bound (a few microseconds); for ImageNet-sized [256, 1000] forward
// reads 1 MB and writes 1 MB, a sub-microsecond memory ceiling at 4.8 TB/s. Fraction of the
// ceiling reached: not yet measured on a GPU.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct Plus {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// Folds v over the block with op and returns the result to every thread. blockDim.x must be a
// multiple of 32; `identity` fills the lanes of warp 0 that have no warp result to fold.
template <typename T, typename Op>
__device__ T block_all_reduce(T v, Op op, T identity) {
  __shared__ T warp_result[32];
  __shared__ T result;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  if (lane == 0) warp_result[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? warp_result[lane] : identity;
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (lane == 0) result = v;
  }
  __syncthreads();
  const T out = result;
  __syncthreads();  // everyone has read `result` before a next call may overwrite it
  return out;
}

// Threads per row block: C rounded up to whole warps, at least one warp and at most 256.
unsigned row_threads(int64_t c) {
  return static_cast<unsigned>(std::clamp<int64_t>((c + 31) / 32 * 32, 32, 256));
}

// At most 65535 row blocks; each loops over rows i, i + gridDim.x, ...
unsigned row_blocks(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(n, 65535)); }

// Per row i: probs[i, :] = softmax(z[i, :]); row_loss[i] = its term of the sum (before the
// division by W) and row_weight[i] = w[t_i] (1 without weights). The row loop and every branch
// around a barrier depend only on blockIdx and kernel arguments, so they are block-uniform.
__global__ void cross_entropy_rows_kernel(const float* __restrict__ z,
                                          const int64_t* __restrict__ targets,
                                          const float* __restrict__ w, int64_t n, int64_t c,
                                          double e, float* __restrict__ probs,
                                          double* __restrict__ row_loss,
                                          double* __restrict__ row_weight) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const float* row = z + i * c;
    float* prow = probs + i * c;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) m = fmaxf(m, row[j]);
    m = block_all_reduce(m, Max{}, -INFINITY);
    // Shifting by the row max keeps exp() in (0, 1]: logits of 80 or 1e4 do not overflow.
    double s = 0;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      const float p = expf(row[j] - m);
      prow[j] = p;
      s += p;
    }
    s = block_all_reduce(s, Plus{}, 0.0);
    // Each thread rescales the elements it wrote above: no barrier needed in between.
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) prow[j] *= inv;
    const double log_s = log(s);
    // Smoothing terms: shifted = sum_j w[j] (z[i, j] - m) and S = sum_j w[j]; skipped when e = 0,
    // as on the CPU, so that a -inf logit gives no inf * 0.
    double shifted = 0, sw = 0;
    if (e != 0) {
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
        const double wj = w ? w[j] : 1.0;
        shifted += wj * (row[j] - m);
        sw += wj;
      }
      shifted = block_all_reduce(shifted, Plus{}, 0.0);
      sw = block_all_reduce(sw, Plus{}, 0.0);
    }
    if (threadIdx.x == 0) {
      const int64_t t = targets[i];
      double li = NAN, wt = NAN;
      if (t >= 0 && t < c) {
        wt = w ? w[t] : 1.0;
        // -log p[t] = log(s) - (z[t] - m), formed from small numbers to avoid cancellation.
        li = (1.0 - e) * wt * (log_s - (row[t] - m));
        if (e != 0) li += e / static_cast<double>(c) * (sw * log_s - shifted);
      }
      row_loss[i] = li;
      row_weight[i] = wt;
    }
  }
}

// loss[0] = sum(row_loss) / sum(row_weight). One block.
__global__ void cross_entropy_mean_kernel(const double* __restrict__ row_loss,
                                          const double* __restrict__ row_weight, int64_t n,
                                          float* __restrict__ loss) {
  double total = 0, wsum = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    total += row_loss[i];
    wsum += row_weight[i];
  }
  total = block_all_reduce(total, Plus{}, 0.0);
  wsum = block_all_reduce(wsum, Plus{}, 0.0);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(total / wsum);
}

// The scalars of the gradient, as the CPU forms them: coeffs[0] = grad_loss / W (W = sum_i
// w[t_i], or N) and coeffs[1] = e/C * S (S = sum_j w[j], or C). One block.
__global__ void cross_entropy_coeffs_kernel(const int64_t* __restrict__ targets,
                                            const float* __restrict__ w, int64_t n, int64_t c,
                                            float smooth, float grad_loss,
                                            float* __restrict__ coeffs) {
  double wsum = 0, sw = 0;
  if (w) {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t t = targets[i];
      wsum += t >= 0 && t < c ? static_cast<double>(w[t]) : NAN;
    }
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) sw += w[j];
    // w is a kernel argument: the branch is uniform, so the barriers inside are reached by all.
    wsum = block_all_reduce(wsum, Plus{}, 0.0);
    sw = block_all_reduce(sw, Plus{}, 0.0);
  } else {
    wsum = static_cast<double>(n);
    sw = static_cast<double>(c);
  }
  if (threadIdx.x == 0) {
    coeffs[0] = static_cast<float>(grad_loss / wsum);
    coeffs[1] = static_cast<float>(smooth * sw);
  }
}

__global__ void cross_entropy_backward_kernel(const float* __restrict__ probs,
                                              const int64_t* __restrict__ targets,
                                              const float* __restrict__ w, int64_t n, int64_t c,
                                              float e, float smooth,
                                              const float* __restrict__ coeffs,
                                              float* __restrict__ g) {
  const float scale = coeffs[0], smooth_all = coeffs[1];
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const float* prow = probs + i * c;
    float* grow = g + i * c;
    const int64_t t = targets[i];
    const float hard = t >= 0 && t < c ? (1.f - e) * (w ? w[t] : 1.f) : NAN;  // (1-e) w[t]
    const float coef = hard + smooth_all;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      float gj = scale * (coef * prow[j] - smooth * (w ? w[j] : 1.f));
      if (j == t) gj -= scale * hard;
      grow[j] = gj;
    }
  }
}

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& weight,
                           float label_smoothing, Tensor& loss, Tensor& probs) {
  const int64_t n = logits.size(0), c = logits.size(1);
  Scratch rows(sizeof(double) * 2 * static_cast<size_t>(std::max<int64_t>(n, 1)));
  double* row_loss = rows.as<double>();
  double* row_weight = row_loss + n;
  if (n > 0) {
    cross_entropy_rows_kernel<<<row_blocks(n), row_threads(c), 0, stream()>>>(
        fptr(logits), targets.data<int64_t>(), fptr(weight), n, c, label_smoothing, fptr(probs),
        row_loss, row_weight);
    ENGINE_CUDA_CHECK(cudaGetLastError());
  }
  cross_entropy_mean_kernel<<<1, kBlock, 0, stream()>>>(row_loss, row_weight, n, fptr(loss));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_backward(const Tensor& probs, const Tensor& targets, const Tensor& weight,
                            float label_smoothing, float grad_loss, Tensor& glogits) {
  const int64_t n = probs.size(0), c = probs.size(1);
  if (n == 0 || c == 0) return;
  const float e = label_smoothing;
  const float smooth = e / static_cast<float>(c);  // e/C, in float as on the CPU
  Scratch coeffs(2 * sizeof(float));
  cross_entropy_coeffs_kernel<<<1, kBlock, 0, stream()>>>(targets.data<int64_t>(), fptr(weight), n,
                                                          c, smooth, grad_loss, coeffs.as<float>());
  ENGINE_CUDA_CHECK(cudaGetLastError());
  cross_entropy_backward_kernel<<<row_blocks(n), row_threads(c), 0, stream()>>>(
      fptr(probs), targets.data<int64_t>(), fptr(weight), n, c, e, smooth, coeffs.as<float>(),
      fptr(glogits));
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void register_loss(KernelTable& t) {
  t.cross_entropy_forward = cross_entropy_forward;
  t.cross_entropy_backward = cross_entropy_backward;
}

}  // namespace engine::cuda
