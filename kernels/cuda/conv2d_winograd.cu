// conv2d_winograd_f2x3 and conv2d_winograd_f4x3 on the GPU: Winograd minimal filtering
// F(MxM, 3x3) (Lavin & Gray 2016) for 3x3, stride-1, dilation-1, one-group convolutions, forward
// and backward data; the transforms are kernels/cpu/conv2d_winograd.cpp's.
//
// Each MxM block of outputs (a tile) is Y = A^T [ (G w G^T) (.) (B^T d B) ] A from the
// (M+2)x(M+2) input block d; summed over input channels the element-wise product is one GEMM per
// position xi of the transformed (M+2)x(M+2) domain:
//   Mo[xi] (Cout x T) = U[xi]^T (Cout x Cin) V[xi] (Cin x T),   T = tiles of a chunk of images
// Four steps, each a kernel: the filter transform U[xi][ci][co] = (G w[co][ci] G^T)[xi] (one
// thread per filter), the input transform V[xi][ci][t] = (B^T d B)[xi] (one thread per channel
// and tile, neighbouring threads neighbouring tiles), the (M+2)^2 products on the implicit-GEMM
// core (conv2d_gemm.cuh: grid.z = positions x splits, its planner choosing tile and split), and
// the output transform (one thread per output channel and tile), which sums the split partials
// in a fixed order, then applies the bias and the activation as the implicit GEMM's epilogue does.
// Backward data is the same algorithm: the gradient of a 3x3 stride-1 convolution with padding p
// is a 3x3 convolution of gy, padded by 2 - p, with the filter flipped and its channel axes
// swapped, which the filter transform reads in place.
// F(2x2,3x3): 16 products per 4 outputs instead of 36 (2.25x fewer multiplies); F(4x4,3x3): 36
// per 16 (4x fewer), with transform constants (1/24, 8) that cost float32 accuracy; as on the
// CPU, the planner never picks it by itself (ENGINE_CUDA_CONV_ALGO=winograd4 forces it).
// Work, the study's 256->256 3x3 layer at 32x32, batch 64 (77.3 GFLOP direct): F(2x2) runs 34.4
// GFLOP of products and moves V and Mo (16 x 256 x 16384 floats, 268 MB each) out and back, so
// 1.1 GB of transform traffic; F(4x4) 19.3 GFLOP and 2 x 151 MB. Images are taken in chunks so
// that V and Mo stay under 128 MB each. The planner compares this, in its model of whole waves
// and DRAM bytes, with the implicit GEMM per shape. Speed has not been measured on a GPU: the
// model's choice is unverified there.
// Registers (nvcc 13.0 -Xptxas -v, sm_90): the products 79-127, no spills; the transforms 32-72,
// except F(4x4)'s output transform at 160 (36 sums and a 6x4 intermediate in registers).
#include <algorithm>
#include <cmath>

#include "kernels/cuda/conv2d_winograd.h"

namespace engine::cuda {
namespace {

using gemm::ceil_div;
using gemm::GemmPlan;
using gemm::inside;

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  kernel<<<grid, block, 0, stream()>>>(args...);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}
constexpr auto kLaunch = [](auto... a) { launch(a...); };

// The 1-D transforms, applied to rows and then to columns; in and out have element stride S.
// input: t = B^T d, filter: u = G g, output: y = A^T m (the CPU file's matrices, written out).
template <int M>
struct Wino;
template <>
struct Wino<2> {
  template <int S>
  __device__ static void input(const float* d, float* t) {
    t[0] = d[0] - d[2 * S];
    t[S] = d[S] + d[2 * S];
    t[2 * S] = d[2 * S] - d[S];
    t[3 * S] = d[S] - d[3 * S];
  }
  template <int S>
  __device__ static void filter(const float* g, float* u) {
    u[0] = g[0];
    u[S] = 0.5f * (g[0] + g[S] + g[2 * S]);
    u[2 * S] = 0.5f * (g[0] - g[S] + g[2 * S]);
    u[3 * S] = g[2 * S];
  }
  template <int S>
  __device__ static void output(const float* m, float* y) {
    y[0] = m[0] + m[S] + m[2 * S];
    y[S] = m[S] - m[2 * S] - m[3 * S];
  }
};
template <>
struct Wino<4> {
  template <int S>
  __device__ static void input(const float* d, float* t) {
    t[0] = 4.f * d[0] - 5.f * d[2 * S] + d[4 * S];
    t[S] = -4.f * d[S] - 4.f * d[2 * S] + d[3 * S] + d[4 * S];
    t[2 * S] = 4.f * d[S] - 4.f * d[2 * S] - d[3 * S] + d[4 * S];
    t[3 * S] = -2.f * d[S] - d[2 * S] + 2.f * d[3 * S] + d[4 * S];
    t[4 * S] = 2.f * d[S] - d[2 * S] - 2.f * d[3 * S] + d[4 * S];
    t[5 * S] = 4.f * d[S] - 5.f * d[3 * S] + d[5 * S];
  }
  template <int S>
  __device__ static void filter(const float* g, float* u) {
    u[0] = g[0] / 4.f;
    u[S] = -(g[0] + g[S] + g[2 * S]) / 6.f;
    u[2 * S] = -(g[0] - g[S] + g[2 * S]) / 6.f;
    u[3 * S] = g[0] / 24.f + g[S] / 12.f + g[2 * S] / 6.f;
    u[4 * S] = g[0] / 24.f - g[S] / 12.f + g[2 * S] / 6.f;
    u[5 * S] = g[2 * S];
  }
  template <int S>
  __device__ static void output(const float* m, float* y) {
    y[0] = m[0] + m[S] + m[2 * S] + m[3 * S] + m[4 * S];
    y[S] = m[S] - m[2 * S] + 2.f * (m[3 * S] - m[4 * S]);
    y[2 * S] = m[S] + m[2 * S] + 4.f * (m[3 * S] + m[4 * S]);
    y[3 * S] = m[S] - m[2 * S] + 8.f * (m[3 * S] - m[4 * S]) + m[5 * S];
  }
};

// One chunk of the convolution as the transforms see it: c input channels (the products' K),
// k output channels, an h x w input padded by (pad_h, pad_w), an oh x ow output in th x tw tiles,
// images [n0, n0 + tiles / (th*tw)).
struct WinoGeom {
  int n, c, k, h, w, oh, ow, pad_h, pad_w, th, tw;
  int n0, tiles;
};

// V[xi][ci][t] = (B^T d B)[xi], i = ci*T + t.
template <int M>
__global__ void input_transform_kernel(const float* __restrict__ x, float* __restrict__ v,
                                       WinoGeom g) {
  constexpr int A = M + 2;
  const int64_t plane = int64_t{g.c} * g.tiles;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < plane;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int c = static_cast<int>(i / g.tiles), t = static_cast<int>(i - int64_t{c} * g.tiles);
    const int per = g.th * g.tw, n = t / per, r = t - n * per, ty = r / g.tw, tx = r - ty * g.tw;
    const float* xc = x + (int64_t{g.n0 + n} * g.c + c) * g.h * g.w;
    const int y0 = ty * M - g.pad_h, x0 = tx * M - g.pad_w;
    float d[A][A], rows[A][A], q[A][A];
#pragma unroll
    for (int a = 0; a < A; ++a)
#pragma unroll
      for (int b = 0; b < A; ++b) {
        const int iy = y0 + a, ix = x0 + b;
        d[a][b] = inside(iy, g.h) && inside(ix, g.w) ? xc[iy * g.w + ix] : 0.f;
      }
#pragma unroll
    for (int a = 0; a < A; ++a) Wino<M>::template input<1>(d[a], rows[a]);
#pragma unroll
    for (int b = 0; b < A; ++b) Wino<M>::template input<A>(&rows[0][b], &q[0][b]);
#pragma unroll
    for (int xi = 0; xi < A * A; ++xi) v[xi * plane + i] = q[xi / A][xi % A];
  }
}

// U[xi][ci][co] = (G f G^T)[xi], i = ci*K + co, f = w[co][ci] (forward; w [K, C, 3, 3]) or, for
// backward data, w[ci][co] flipped in both axes (w [C, K, 3, 3]).
template <int M>
__global__ void filter_transform_kernel(const float* __restrict__ w, float* __restrict__ u, int c,
                                        int k, bool flip) {
  constexpr int A = M + 2;
  const int64_t plane = int64_t{c} * k;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < plane;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int ci = static_cast<int>(i / k), co = static_cast<int>(i - int64_t{ci} * k);
    const float* f = w + (flip ? int64_t{ci} * k + co : int64_t{co} * c + ci) * 9;
    float g[3][3], rows[3][A], q[A][A];
#pragma unroll
    for (int a = 0; a < 3; ++a)
#pragma unroll
      for (int b = 0; b < 3; ++b) g[a][b] = flip ? f[(2 - a) * 3 + 2 - b] : f[a * 3 + b];
#pragma unroll
    for (int a = 0; a < 3; ++a) Wino<M>::template filter<1>(g[a], rows[a]);
#pragma unroll
    for (int b = 0; b < A; ++b) Wino<M>::template filter<A>(&rows[0][b], &q[0][b]);
#pragma unroll
    for (int xi = 0; xi < A * A; ++xi) u[xi * plane + i] = q[xi / A][xi % A];
  }
}

// y[n0 + n, co, tile] = act(A^T (sum over splits of Mo[split][xi][co][t]) A + bias[co]),
// i = co*T + t; outputs past the edge of y are not written.
template <int M, class Act>
__global__ void output_transform_kernel(const float* __restrict__ mo, int splits,
                                        const float* __restrict__ bias, float* __restrict__ y,
                                        WinoGeom g) {
  constexpr int A = M + 2;
  const int64_t plane = int64_t{g.k} * g.tiles, slice = A * A * plane;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < plane;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int co = static_cast<int>(i / g.tiles), t = static_cast<int>(i - int64_t{co} * g.tiles);
    float m[A][A], rows[A][M], out[M][M];
#pragma unroll
    for (int xi = 0; xi < A * A; ++xi) {
      float s = 0.f;
      for (int sp = 0; sp < splits; ++sp) s += mo[sp * slice + xi * plane + i];
      m[xi / A][xi % A] = s;
    }
#pragma unroll
    for (int a = 0; a < A; ++a) Wino<M>::template output<1>(m[a], rows[a]);
#pragma unroll
    for (int b = 0; b < M; ++b) Wino<M>::template output<M>(&rows[0][b], &out[0][b]);
    const int per = g.th * g.tw, n = t / per, r = t - n * per, ty = r / g.tw, tx = r - ty * g.tw;
    float* yp = y + (int64_t{g.n0 + n} * g.k + co) * g.oh * g.ow;
#pragma unroll
    for (int a = 0; a < M; ++a) {
      const int oy = ty * M + a;
      if (oy >= g.oh) break;
#pragma unroll
      for (int b = 0; b < M; ++b) {
        const int ox = tx * M + b;
        if (ox < g.ow) yp[oy * g.ow + ox] = Act{}(bias ? out[a][b] + bias[co] : out[a][b]);
      }
    }
  }
}

// The products' operands: per position xi (the GEMM's group) a depth x rows matrix stored
// row-contiguous, element (kk, r) at p[xi*depth*rows + kk*rows + r]: V (rows = tiles, depth =
// input channels) and U (rows = output channels).
struct PlaneOperand {
  static constexpr bool kRowContiguous = true;
  const float* p;
  int rows, depth;
  struct Row {
    int r;  // or -1 past the last row
  };
  struct Col {
    int64_t offset;  // kk*rows, or -1 past the depth
  };
  __device__ void bind(int group) { p += int64_t{group} * depth * rows; }
  __device__ Row row(int r) const { return {r < rows ? r : -1}; }
  __device__ Col col(int kk) const { return {kk < depth ? int64_t{kk} * rows : -1}; }
  __device__ float load(const Row& r, const Col& c) const {
    return r.r >= 0 && c.offset >= 0 ? p[c.offset + r.r] : 0.f;
  }
};

// Mo[split][xi][co][t].
struct ProductOutput {
  float* out;
  int tiles, k;
  int64_t slice;  // (M+2)^2 * K * T
  struct Row {
    int t;
  };
  __device__ void bind(int group, int split) { out += split * slice + int64_t{group} * k * tiles; }
  __device__ Row row(int t) const { return {t}; }
  __device__ void store(const Row& r, int co, float v) const { out[int64_t{co} * tiles + r.t] = v; }
};

const gemm::Occupancy& product_occupancy() {
  return gemm::occupancy<PlaneOperand, PlaneOperand, ProductOutput>();
}

// Largest V or Mo of one chunk, in floats (128 MB).
constexpr int64_t kChunkFloats = int64_t{32} << 20;

// The forward's (or, flipped, backward data's) geometry, with the images per chunk in g.tiles's
// stead until a chunk is taken: nb.
struct Problem {
  WinoGeom g;
  int nb;  // images per chunk
};

Problem problem(int m, const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p,
                bool backward_data) {
  const int a2 = (m + 2) * (m + 2);
  WinoGeom g{};
  g.n = static_cast<int>(x[0]);
  if (backward_data) {  // a convolution of gy [N, Cout, OH, OW] producing gx [N, Cin, H, W]
    g.c = static_cast<int>(w[0]), g.k = static_cast<int>(w[1]);
    g.h = static_cast<int>(y[2]), g.w = static_cast<int>(y[3]);
    g.oh = static_cast<int>(x[2]), g.ow = static_cast<int>(x[3]);
    g.pad_h = static_cast<int>(2 - p.pad_h), g.pad_w = static_cast<int>(2 - p.pad_w);
  } else {
    g.c = static_cast<int>(x[1]), g.k = static_cast<int>(w[0]);
    g.h = static_cast<int>(x[2]), g.w = static_cast<int>(x[3]);
    g.oh = static_cast<int>(y[2]), g.ow = static_cast<int>(y[3]);
    g.pad_h = static_cast<int>(p.pad_h), g.pad_w = static_cast<int>(p.pad_w);
  }
  g.th = static_cast<int>(ceil_div(g.oh, m)), g.tw = static_cast<int>(ceil_div(g.ow, m));
  const int64_t per = int64_t{g.th} * g.tw;
  const int64_t nb = std::clamp<int64_t>(kChunkFloats / (a2 * std::max(g.c, g.k) * per), 1, g.n);
  return {g, static_cast<int>(nb)};
}

template <int M, class Act>
void run(const GemmPlan& plan, Problem pr, const float* in, const float* w, bool flip,
         const float* bias, float* out) {
  constexpr int A2 = (M + 2) * (M + 2);
  WinoGeom g = pr.g;
  const int per = g.th * g.tw, max_tiles = pr.nb * per;
  Scratch u(sizeof(float) * A2 * g.c * g.k);
  launch(filter_transform_kernel<M>, dim3(grid_for(int64_t{g.c} * g.k)), dim3(kBlock), w,
         u.as<float>(), g.c, g.k, flip);
  Scratch v(sizeof(float) * A2 * g.c * max_tiles);
  Scratch mo(sizeof(float) * plan.splits * A2 * g.k * max_tiles);
  for (g.n0 = 0; g.n0 < g.n; g.n0 += pr.nb) {
    g.tiles = std::min(pr.nb, g.n - g.n0) * per;
    launch(input_transform_kernel<M>, dim3(grid_for(int64_t{g.c} * g.tiles)), dim3(kBlock), in,
           v.as<float>(), g);
    gemm::run_gemm(kLaunch, plan, PlaneOperand{v.as<float>(), g.tiles, g.c},
                   PlaneOperand{u.as<float>(), g.k, g.c},
                   ProductOutput{mo.as<float>(), g.tiles, g.k, int64_t{A2} * g.k * g.tiles},
                   g.tiles, g.k, g.c, A2);
    launch(output_transform_kernel<M, Act>, dim3(grid_for(int64_t{g.k} * g.tiles)), dim3(kBlock),
           mo.as<float>(), plan.splits, bias, out, g);
  }
}

}  // namespace

bool winograd_applies(const Shape& w, const Conv2dParams& p, bool backward_data) {
  return w[2] == 3 && w[3] == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
         p.dilation_w == 1 && p.groups == 1 && (!backward_data || (p.pad_h <= 2 && p.pad_w <= 2));
}

GemmPlan winograd_plan(int m, const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p,
                       bool backward_data) {
  const Problem pr = problem(m, x, w, y, p, backward_data);
  const WinoGeom& g = pr.g;
  const int64_t a2 = (m + 2) * (m + 2), tiles = int64_t{pr.nb} * g.th * g.tw;
  if (tiles * std::max(g.c, g.k) >= (int64_t{1} << 31)) {  // past the products' int indices
    GemmPlan none;
    none.cycles = INFINITY;
    return none;
  }
  GemmPlan plan = gemm::plan_gemm(tiles, g.k, g.c, a2, product_occupancy());
  // Beside the products: V written and read, Mo written and read (the products' model already
  // counts the partials of a split), U once, and three more launches, per chunk.
  const double bytes = 4.0 * a2 * tiles * (2.0 * g.c + (plan.splits == 1 ? 2.0 * g.k : 0.0));
  const double chunk = plan.cycles + bytes / gemm::kBytesPerCycle + 2 * gemm::kLaunchCycles;
  plan.cycles = ceil_div(g.n, pr.nb) * chunk + 4.0 * a2 * g.c * g.k / gemm::kBytesPerCycle +
                gemm::kLaunchCycles;
  return plan;
}

void winograd_forward(int m, const GemmPlan& plan, const Tensor& x, const Tensor& w,
                      const Tensor& b, Tensor& y, const Conv2dParams& p) {
  const Problem pr = problem(m, x.shape(), w.shape(), y.shape(), p, false);
  gemm::with_activation(p.activation, [&](auto act) {
    using Act = decltype(act);
    (m == 2 ? run<2, Act> : run<4, Act>)(plan, pr, fptr(x), fptr(w), false, fptr(b), fptr(y));
  });
}

void winograd_backward_data(int m, const GemmPlan& plan, const Tensor& gy, const Tensor& w,
                            Tensor& gx, const Conv2dParams& p) {
  const Problem pr = problem(m, gx.shape(), w.shape(), gy.shape(), p, true);
  (m == 2 ? run<2, gemm::NoActivation> : run<4, gemm::NoActivation>)(plan, pr, fptr(gy), fptr(w),
                                                                     true, nullptr, fptr(gx));
}

}  // namespace engine::cuda
