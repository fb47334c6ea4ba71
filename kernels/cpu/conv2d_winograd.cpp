// conv2d_winograd_f2x3 and conv2d_winograd_f4x3: Winograd minimal filtering F(MxM, 3x3) (Lavin &
// Gray 2016) for 3x3 stride-1 convolutions, forward and both gradients, on the CPU.
//
// Each MxM block of outputs ("tile") is computed from an (M+2)x(M+2) block d of input:
//   Y = A^T [ (G w G^T) (.) (B^T d B) ] A
// where (.) is the element-wise product. Summed over input channels that product is a GEMM per
// position xi of the transformed (M+2)x(M+2) domain:
//   M[xi] (T x Cout) = V[xi] (T x Cin) * U[xi]^T,  U[xi] (Cout x Cin),  T = tiles in the chunk,
// the tiles' operands stored channels-last so that the transforms run on vectors of 8 channels
// (see "The transformed operands" below).
// F(2x2,3x3): 16 GEMMs, 16 multiplies per 4 outputs instead of 36 (2.25x fewer).
// F(4x4,3x3): 36 GEMMs, 36 multiplies per 16 outputs instead of 144 (4x fewer), at the price of
// larger transforms and constants (1/24, 8) that cost some float32 accuracy.
// Both gradients are the adjoints of the same linear maps:
//   dd = B [ U (.) (A dY A^T) ] B^T   (backward data: Mg[xi] * U[xi], then scatter-add tiles)
//   dw = G^T [ sum_tiles (A dY A^T) (.) (B^T d B) ] G   (backward weight: Mg[xi]^T * V[xi])
// so forward, backward-data and backward-weight all run the same GEMMs on the same transforms.
// Study shape 1024->1024 at 16x16, batch 8: 38.7 GFLOP direct, 17.2 in F(2x2), 9.7 in F(4x4).
// The bias and Conv2dParams::activation are applied in the output transform, to each MxM block
// while it is in registers: the epilogue adds no pass over y, only a compare (ReLU/ReLU6) or an
// exp polynomial and a divide (sigmoid/tanh) per output.
#include "kernels/cpu/conv2d_winograd.h"

#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/cpu_util.h"

// The 8-float vectors below are passed between inlined helpers of this file only; built without
// AVX (the fuzz build, ENGINE_NATIVE_ARCH=OFF) the compilers warn that their calling convention
// differs from an AVX build's, which no caller outside this file can see.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace engine::cpu {
namespace {

// Largest transformed buffer (V or M), in floats, that decides the images per chunk.
constexpr int64_t kBudget = 24 << 20;
// Largest block of transformed weights (U or S), in floats: see cout_block.
constexpr int64_t kWeightBudget = 8 << 20;
// Weight transforms go through blocks of kBlock filters held on the stack, so each plane of U is
// written (or read) kBlock floats at a time: writing all planes one float at a time from each
// filter ran 3x slower (23 ms vs 8 ms for 1024x1024 filters in F(2x2), measured).
constexpr int64_t kBlock = 128;

// set_winograd_limits (tests): 0 leaves a limit to the budgets below.
WinogradLimits& forced_limits() {
  static WinogradLimits l;
  return l;
}

template <int M>
struct Wino;
template <>
struct Wino<2> {
  static constexpr int A = 4;
  static constexpr float BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float G[4][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
  static constexpr float AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
// F(4x4,3x3) from the interpolation points 0, 1, -1, 2, -1/2 and infinity (Toom-Cook: AT's
// columns are the points' powers, G's rows [1, a, a^2] / prod_{b != a} (a - b), BT's rows the
// coefficients of prod_{b != a} (x - b)). The usual points 0, +-1, +-2 put 8 in A^T and 5 in B^T;
// trading -2 for -1/2 shrinks them, and the float32 error of a 256-channel layer against float64
// fell from 1.26e-5 to 4.5e-6 of max|y| in a simulation of this arithmetic (bench/RESULTS.md),
// so that F(4x4) is held to the same parity tolerance as the other algorithms.
template <>
struct Wino<4> {
  static constexpr int A = 6;
  static constexpr float BT[6][6] = {{1, 1.5f, -2, -1.5f, 1, 0}, {0, -1, -2.5f, -.5f, 1, 0},
                                     {0, 1, .5f, -2.5f, 1, 0},   {0, -.5f, -1, .5f, 1, 0},
                                     {0, 2, -1, -2, 1, 0},       {0, 1, 1.5f, -2, -1.5f, 1}};
  static constexpr float G[6][3] = {{1, 0, 0},
                                    {-1.f / 3, -1.f / 3, -1.f / 3},
                                    {1.f / 3, -1.f / 3, 1.f / 3},
                                    {1.f / 15, 2.f / 15, 4.f / 15},
                                    {-16.f / 15, 8.f / 15, -4.f / 15},
                                    {0, 0, 1}};
  static constexpr float AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -.5f, 0}, {0, 1, 1, 4, .25f, 0}, {0, 1, -1, 8, -.125f, 1}};
};

template <int M>
struct Tiles {
  static constexpr int A = Wino<M>::A, A2 = A * A;
  int64_t n, cin, cout, h, w, oh, ow, th, tw, pad_h, pad_w;
  Tiles(const Shape& x, const Shape& wt, const Shape& y, const Conv2dParams& p)
      : n(x[0]),
        cin(x[1]),
        cout(wt[0]),
        h(x[2]),
        w(x[3]),
        oh(y[2]),
        ow(y[3]),
        th((y[2] + M - 1) / M),
        tw((y[3] + M - 1) / M),
        pad_h(p.pad_h),
        pad_w(p.pad_w) {}
  int64_t per_image() const { return th * tw; }
  int64_t chunk_images() const {
    if (forced_limits().chunk_images > 0) return std::min(forced_limits().chunk_images, n);
    const int64_t per = A2 * std::max(cin, cout) * per_image();
    return std::clamp<int64_t>(kBudget / std::max<int64_t>(per, 1), 1, n);
  }
};

// Calls f(std::integral_constant<int, 0>{}) ... f(<N - 1>): a loop over compile-time indices.
template <int N, typename F>
inline void static_for(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}

// The transforms work on kLanes channels at once: each value below is a vector of one position
// in kLanes consecutive channels (GCC vector extension; one AVX register, two SSE ones).
constexpr int kLanes = 8;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float)), aligned(sizeof(float))));

// sum_k L[Row][k] * x(k) (or sum_k L[k][Row] * x(k) when Trans) for a constexpr transform matrix
// L, unrolled with the zero coefficients dropped and +-1 turned into an add or subtract: IEEE
// arithmetic does not let the compiler fold 0 * x away itself, and F(2x2)'s matrices are half
// zeros. The remaining terms are summed in ascending k, as a plain loop would.
template <const auto& L, int Row, bool Trans, typename X>
inline Vec lin(const X& x) {
  using Mat = std::remove_cvref_t<decltype(L)>;
  constexpr int K = std::extent_v < Mat, Trans ? 0 : 1 > ;
  Vec acc = {};
  static_for<K>([&](auto k) {
    constexpr float c = [] {
      if constexpr (Trans)
        return L[decltype(k)::value][Row];
      else
        return L[Row][decltype(k)::value];
    }();
    if constexpr (c == 1.f)
      acc += x(k);
    else if constexpr (c == -1.f)
      acc -= x(k);
    else if constexpr (c != 0.f)
      acc += c * x(k);
  });
  return acc;
}

// The transformed operands are stored channels-last, [xi][tile][channel], so that one tile's
// transform writes (or reads) kLanes consecutive floats per position xi; the GEMMs take them in
// that layout (see forward()). A block of kLanes channels of one image is first interleaved into
// [row][col][lane] (zero-padded: no bounds checks per element), transformed tile by tile with
// whole-vector arithmetic, and, for the passes that produce planes, de-interleaved again.
// `cn` <= kLanes is the block's channel count: the lanes beyond it are zeros and never stored.

// dst[r][s][l] = src[l][r - pad_h][s - pad_w] (planes h x w, `plane` floats apart) for r < ph,
// s < pw, l < cn; 0 outside the planes and in lanes >= cn.
inline void interleave(const float* src, int64_t plane, int cn, int64_t h, int64_t w, int64_t pad_h,
                       int64_t pad_w, int64_t ph, int64_t pw, float* dst) {
  std::fill(dst, dst + ph * pw * kLanes, 0.f);
  const int64_t r0 = std::max<int64_t>(0, pad_h), r1 = std::min(ph, pad_h + h);
  const int64_t s0 = std::max<int64_t>(0, pad_w), s1 = std::min(pw, pad_w + w);
  for (int l = 0; l < cn; ++l)
    for (int64_t r = r0; r < r1; ++r) {
      const float* in = src + l * plane + (r - pad_h) * w - pad_w;
      float* out = dst + r * pw * kLanes + l;
      for (int64_t s = s0; s < s1; ++s) out[s * kLanes] = in[s];
    }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline Vec load(const float* p) { return *reinterpret_cast<const Vec*>(p); }
inline void store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }
// The first cn lanes only (a full store when cn == kLanes).
inline Vec load_n(const float* p, int cn) {
  if (cn == kLanes) return load(p);
  Vec v = {};
  for (int l = 0; l < cn; ++l) v[l] = p[l];
  return v;
}
inline void store_n(float* p, Vec v, int cn) {
  if (cn == kLanes) return store(p, v);
  for (int l = 0; l < cn; ++l) p[l] = v[l];
}

// U[xi][co][ci] = (G w[co][ci] G^T)[xi], kLanes filters at a time: a block of filters is first
// transposed into g[tap][filter] on the stack, so that each of the 9 taps is a vector across
// kLanes filters and the transform is whole-vector arithmetic (the same lin() as the tiles'), then
// each plane of U is written kBlock floats at a time. Scalar, one filter at a time, this was 8% of
// a quarter-width training step (F(4x4) at 16x16 rebuilds U for 256 x 256 filters in two passes).
template <int M>
void transform_weights(const float* w, int64_t cout, int64_t cin, float* u) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const int64_t plane = cout * cin, blocks = (plane + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t k0 = bl * kBlock, kn = std::min(kBlock, plane - k0);
    alignas(64) float g[9][kBlock];
    alignas(64) float out[A2][kBlock];
    for (int i = 0; i < 9; ++i) {
      for (int64_t kk = 0; kk < kn; ++kk) g[i][kk] = w[(k0 + kk) * 9 + i];
      std::fill(g[i] + kn, g[i] + kBlock, 0.f);
    }
    for (int64_t kk = 0; kk < kn; kk += kLanes) {
      Vec t[A][3];  // G g
      static_for<A>([&](auto a) {
        static_for<3>([&](auto j) {
          t[a][j] = lin<W::G, a, false>([&](auto i) { return load(g[i * 3 + j] + kk); });
        });
      });
      static_for<A>([&](auto a) {
        static_for<A>([&](auto b) {
          store(out[a * A + b] + kk, lin<W::G, b, false>([&](auto j) { return t[a][j]; }));
        });
      });
    }
    for (int xi = 0; xi < A2; ++xi) std::copy_n(out[xi], kn, u + xi * plane + k0);
  }
}

// gw[f] = (G^T s[f] G) (added to gw[f] when accumulate) for the filters f of one transformed
// weight gradient S[xi][f], kLanes filters at a time as transform_weights (whose adjoint this is).
template <int M>
void untransform_weight_grad(const float* s, int64_t plane, float* gwp, bool accumulate) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const int64_t blocks = (plane + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t k0 = bl * kBlock, kn = std::min(kBlock, plane - k0);
    alignas(64) float in[A2][kBlock];
    alignas(64) float g[9][kBlock];
    for (int xi = 0; xi < A2; ++xi) {
      std::copy_n(s + xi * plane + k0, kn, in[xi]);
      std::fill(in[xi] + kn, in[xi] + kBlock, 0.f);
    }
    for (int64_t kk = 0; kk < kn; kk += kLanes) {
      Vec t[3][A];  // G^T q
      static_for<3>([&](auto i) {
        static_for<A>([&](auto b) {
          t[i][b] = lin<W::G, i, true>([&](auto a) { return load(in[a * A + b] + kk); });
        });
      });
      static_for<3>([&](auto i) {
        static_for<3>([&](auto j) {
          store(g[i * 3 + j] + kk, lin<W::G, j, true>([&](auto b) { return t[i][b]; }));
        });
      });
    }
    for (int64_t kk = 0; kk < kn; ++kk) {
      float* out = gwp + (k0 + kk) * 9;
      for (int i = 0; i < 9; ++i) out[i] = accumulate ? out[i] + g[i][kk] : g[i][kk];
    }
  }
}

// Runs f(i, c0, cn, buf) for each image i of the chunk and each block of cn <= kLanes channels
// from c0, in parallel, with a per-thread work buffer of buf_floats floats.
template <typename F>
void for_each_block(int64_t nb, int64_t channels, int64_t nt, int64_t buf_floats, F&& f) {
  const int64_t cblocks = ceil_div(channels, kLanes);
  const bool parallel = channels * nt > 1024;
  (void)parallel;  // unused where OpenMP is off (the fuzz build)
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t i = 0; i < nb; ++i) {
    for (int64_t cb = 0; cb < cblocks; ++cb) {
      const int64_t c0 = cb * kLanes;
      f(i, c0, static_cast<int>(std::min<int64_t>(kLanes, channels - c0)), scratch(3, buf_floats));
    }
  }
}

// V[xi][tile][c] = (B^T d B)[xi] for the input block d of each tile of images [n0, n0+nb).
template <int M>
void transform_input(const float* x, const Tiles<M>& t, int64_t n0, int64_t nb, float* v) {
  using W = Wino<M>;
  constexpr int A = W::A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per;
  const int64_t ph = M * t.th + 2, pw = M * t.tw + 2;
  for_each_block(nb, t.cin, nt, ph * pw * kLanes, [&](int64_t i, int64_t c0, int cn, float* buf) {
    interleave(x + ((n0 + i) * t.cin + c0) * t.h * t.w, t.h * t.w, cn, t.h, t.w, t.pad_h, t.pad_w,
               ph, pw, buf);
    for (int64_t ty = 0; ty < t.th; ++ty) {
      for (int64_t tx = 0; tx < t.tw; ++tx) {
        const float* d = buf + (M * ty * pw + M * tx) * kLanes;
        Vec rows[A][A];  // B^T d
        static_for<A>([&](auto r2) {
          static_for<A>([&](auto s) {
            rows[r2][s] =
                lin<W::BT, r2, false>([&](auto r) { return load(d + (r * pw + s) * kLanes); });
          });
        });
        float* out = v + (i * tiles_per + ty * t.tw + tx) * t.cin + c0;
        static_for<A>([&](auto r2) {
          static_for<A>([&](auto s2) {
            store_n(out + (r2 * A + s2) * nt * t.cin,
                    lin<W::BT, s2, false>([&](auto s) { return rows[r2][s]; }), cn);
          });
        });
      }
    }
  });
}

// Mg[xi][tile][co] = (A dY A^T)[xi] for the MxM output-gradient block of each tile (0 beyond
// the output edge).
template <int M>
void transform_output_grad(const float* gy, const Tiles<M>& t, int64_t n0, int64_t nb, float* mg) {
  using W = Wino<M>;
  constexpr int A = W::A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per;
  const int64_t ph = M * t.th, pw = M * t.tw;
  for_each_block(nb, t.cout, nt, ph * pw * kLanes, [&](int64_t i, int64_t c0, int cn, float* buf) {
    interleave(gy + ((n0 + i) * t.cout + c0) * t.oh * t.ow, t.oh * t.ow, cn, t.oh, t.ow, 0, 0, ph,
               pw, buf);
    for (int64_t ty = 0; ty < t.th; ++ty) {
      for (int64_t tx = 0; tx < t.tw; ++tx) {
        const float* d = buf + (M * ty * pw + M * tx) * kLanes;
        Vec rows[A][M];  // A^T-transposed applied to the rows: (A dY) per column
        static_for<A>([&](auto a2) {
          static_for<M>([&](auto b) {
            rows[a2][b] =
                lin<W::AT, a2, true>([&](auto a) { return load(d + (a * pw + b) * kLanes); });
          });
        });
        float* out = mg + (i * tiles_per + ty * t.tw + tx) * t.cout + c0;
        static_for<A>([&](auto a2) {
          static_for<A>([&](auto b2) {
            store_n(out + (a2 * A + b2) * nt * t.cout,
                    lin<W::AT, b2, true>([&](auto b) { return rows[a2][b]; }), cn);
          });
        });
      }
    }
  });
}

// y[tile] = act(A^T M[tile] A + b) for the tiles of images [n0, n0+nb): the output transform,
// with bias and activation applied as the block is de-interleaved into y (no pass of its own).
template <int M, typename Act>
void transform_output(const float* m, const float* bp, const Tiles<M>& t, int64_t n0, int64_t nb,
                      float* yp, Act act) {
  using W = Wino<M>;
  constexpr int A = W::A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per;
  const int64_t ph = M * t.th, pw = M * t.tw;
  for_each_block(nb, t.cout, nt, ph * pw * kLanes, [&](int64_t i, int64_t c0, int cn, float* buf) {
    for (int64_t ty = 0; ty < t.th; ++ty) {
      for (int64_t tx = 0; tx < t.tw; ++tx) {
        const float* q = m + (i * tiles_per + ty * t.tw + tx) * t.cout + c0;
        Vec cols[A][M];  // M A per tile
        static_for<A>([&](auto p) {
          static_for<M>([&](auto b) {
            cols[p][b] = lin<W::AT, b, false>(
                [&](auto k) { return load_n(q + (p * A + k) * nt * t.cout, cn); });
          });
        });
        float* out = buf + (M * ty * pw + M * tx) * kLanes;
        static_for<M>([&](auto a) {
          static_for<M>([&](auto b) {
            store(out + (a * pw + b) * kLanes,
                  lin<W::AT, a, false>([&](auto p) { return cols[p][b]; }));
          });
        });
      }
    }
    for (int l = 0; l < cn; ++l) {
      float* yc = yp + ((n0 + i) * t.cout + c0 + l) * t.oh * t.ow;
      const float bias = bp ? bp[c0 + l] : -0.f;  // -0.f: adding it changes nothing, not even -0
      for (int64_t oy = 0; oy < t.oh; ++oy) {
        const float* in = buf + oy * pw * kLanes + l;
        float* row = yc + oy * t.ow;
#pragma omp simd
        for (int64_t ox = 0; ox < t.ow; ++ox) row[ox] = act(in[ox * kLanes] + bias);
      }
    }
  });
}

// gx = the tiles' B Vg B^T added into a zero-padded block (neighbouring tiles overlap by two
// rows/columns), whose interior is then de-interleaved into the planes of gx.
template <int M>
void transform_input_grad(const float* vg, const Tiles<M>& t, int64_t n0, int64_t nb, float* gx) {
  using W = Wino<M>;
  constexpr int A = W::A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per;
  const int64_t ph = M * t.th + 2, pw = M * t.tw + 2;
  for_each_block(nb, t.cin, nt, ph * pw * kLanes, [&](int64_t i, int64_t c0, int cn, float* buf) {
    std::fill(buf, buf + ph * pw * kLanes, 0.f);
    for (int64_t ty = 0; ty < t.th; ++ty) {
      for (int64_t tx = 0; tx < t.tw; ++tx) {
        const float* q = vg + (i * tiles_per + ty * t.tw + tx) * t.cin + c0;
        Vec cols[A][A];  // Vg B^T per tile
        static_for<A>([&](auto p) {
          static_for<A>([&](auto s) {
            cols[p][s] = lin<W::BT, s, true>(
                [&](auto k) { return load_n(q + (p * A + k) * nt * t.cin, cn); });
          });
        });
        float* out = buf + (M * ty * pw + M * tx) * kLanes;
        static_for<A>([&](auto a) {
          static_for<A>([&](auto s) {
            float* o = out + (a * pw + s) * kLanes;
            store(o, load(o) + lin<W::BT, a, true>([&](auto p) { return cols[p][s]; }));
          });
        });
      }
    }
    for (int l = 0; l < cn; ++l) {
      float* dc = gx + ((n0 + i) * t.cin + c0 + l) * t.h * t.w;
      for (int64_t iy = 0; iy < t.h; ++iy) {
        const float* in = buf + ((iy + t.pad_h) * pw + t.pad_w) * kLanes + l;
        float* row = dc + iy * t.w;
#pragma omp simd
        for (int64_t ix = 0; ix < t.w; ++ix) row[ix] = in[ix * kLanes];
      }
    }
  });
}

// The A*A products of one chunk for output channels [co0, co0 + cb), one SGEMM per position xi,
// on the channels-last operands (M, Mg: T x Cout; V, Vg: T x Cin; U, S: the block's cb x Cin):
//   forward          M[xi][:, block]  (T x cb)   = V[xi] (T x Cin) * U[xi]^T
//   backward data    Vg[xi] (T x Cin)           += Mg[xi][:, block] (T x cb) * U[xi] (cb x Cin)
//                                                  (beta 0 for the first block)
//   backward weight  S[xi] (cb x Cin)            = Mg[xi][:, block]^T * V[xi]
// The GEMMs are shared out among the threads, each running its own single-threaded (OpenBLAS does
// not start threads of its own inside a parallel region): splitting each small GEMM across the
// threads instead cost a wake-up and a join per GEMM, 36 times a pass for F(4x4), which perf showed
// as scheduler and spin time beside the kernel (bench_conv_cpu, batch 8, the three passes of
// F(4x4): 256->256 at 16x16 16.4 -> 13.4 ms, 64->128 4.2 -> 2.8).
enum class Product { Forward, BackwardData, BackwardWeight };
void batched_gemm(Product pr, int count, int64_t nt, int64_t cin, int64_t cout, int64_t co0,
                  int64_t cb, const float* a, const float* b, float* out) {
#pragma omp parallel for schedule(static)
  for (int xi = 0; xi < count; ++xi) {
    switch (pr) {
      case Product::Forward:  // a = V, b = U
        sgemm(false, true, nt, cb, cin, a + xi * nt * cin, cin, b + xi * cb * cin, cin, 0.f,
              out + xi * nt * cout + co0, cout);
        break;
      case Product::BackwardData:  // a = Mg, b = U
        sgemm(false, false, nt, cin, cb, a + xi * nt * cout + co0, cout, b + xi * cb * cin, cin,
              co0 == 0 ? 0.f : 1.f, out + xi * nt * cin, cin);
        break;
      case Product::BackwardWeight:  // a = Mg, b = V
        sgemm(true, false, cb, cin, nt, a + xi * nt * cout + co0, cout, b + xi * nt * cin, cin,
              0.f, out + xi * cb * cin, cin);
        break;
    }
  }
}

// Output channels per block of transformed weights (U, or S in backward weight): all of them
// unless A*A x Cout x Cin floats exceed kWeightBudget (F(4x4)'s U for 1024 -> 1024 is 151 MB,
// 2.3x F(2x2)'s), else a multiple of 16 within it. The GEMMs then run per block, on slices of M
// or Mg (their leading dimension stays Cout).
int64_t cout_block(int a2, int64_t cout, int64_t cin) {
  if (forced_limits().cout_block > 0) return std::min(forced_limits().cout_block, cout);
  const int64_t fit = kWeightBudget / (a2 * cin);
  return fit >= cout ? cout : std::max<int64_t>(16, fit / 16 * 16);
}

// The transformed output gradient Mg of the last backward_data, kept in scratch slot 1 for the
// backward_weight that the conv's backward runs next on the same gy (engine/ops/conv2d.cpp): it
// then skips its own transform_output_grad (7% of a quarter-width training step in perf). Valid
// only when the whole batch was one chunk; any other conv call on the thread forgets it
// (winograd_forget, called by every conv entry point but that backward_weight), so a stale Mg is
// never read.
struct MgMemo {
  const float* gy = nullptr;
  Shape shape;
  int tile = 0;
};
thread_local MgMemo t_mg_memo;

template <int M>
void forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dParams& p) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const Tiles<M> t(x.shape(), w.shape(), y.shape(), p);
  const int64_t cb = cout_block(A2, t.cout, t.cin);
  const bool one_block = cb >= t.cout;
  float* u = scratch(2, A2 * cb * t.cin);
  if (one_block) transform_weights<M>(fptr(w), t.cout, t.cin, u);
  const float *xp = fptr(x), *bp = fptr(b), *wp = fptr(w);
  float* yp = fptr(y);
  const int64_t nb_max = t.chunk_images(), tiles_per = t.per_image();
  for (int64_t n0 = 0; n0 < t.n; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, t.n - n0), nt = nb * tiles_per;
    float* v = scratch(0, A2 * t.cin * nt);
    float* m = scratch(1, A2 * t.cout * nt);
    transform_input<M>(xp, t, n0, nb, v);
    for (int64_t co0 = 0; co0 < t.cout; co0 += cb) {
      const int64_t cn = std::min(cb, t.cout - co0);
      if (!one_block) transform_weights<M>(wp + co0 * t.cin * 9, cn, t.cin, u);
      batched_gemm(Product::Forward, A2, nt, t.cin, t.cout, co0, cn, v, u, m);
    }
    with_activation(p.activation,
                    [&](auto act) { transform_output<M>(m, bp, t, n0, nb, yp, act); });
  }
}

template <int M>
void backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const Tiles<M> t(gx.shape(), w.shape(), gy.shape(), p);
  const int64_t cb = cout_block(A2, t.cout, t.cin);
  const bool one_block = cb >= t.cout;
  float* u = scratch(2, A2 * cb * t.cin);
  if (one_block) transform_weights<M>(fptr(w), t.cout, t.cin, u);
  const float *gyp = fptr(gy), *wp = fptr(w);
  float* gxp = fptr(gx);
  const int64_t nb_max = t.chunk_images(), tiles_per = t.per_image();
  for (int64_t n0 = 0; n0 < t.n; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, t.n - n0), nt = nb * tiles_per;
    float* mg = scratch(1, A2 * t.cout * nt);
    float* vg = scratch(0, A2 * t.cin * nt);
    transform_output_grad<M>(gyp, t, n0, nb, mg);
    for (int64_t co0 = 0; co0 < t.cout; co0 += cb) {
      const int64_t cn = std::min(cb, t.cout - co0);
      if (!one_block) transform_weights<M>(wp + co0 * t.cin * 9, cn, t.cin, u);
      batched_gemm(Product::BackwardData, A2, nt, t.cin, t.cout, co0, cn, mg, u, vg);
    }
    transform_input_grad<M>(vg, t, n0, nb, gxp);
  }
  if (nb_max >= t.n) t_mg_memo = {gyp, gy.shape(), M};
}

template <int M>
void backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, const Conv2dParams& p) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const Tiles<M> t(x.shape(), gw.shape(), gy.shape(), p);
  const int64_t cb = cout_block(A2, t.cout, t.cin);
  float* s = scratch(2, A2 * cb * t.cin);
  const float *gyp = fptr(gy), *xp = fptr(x);
  float* gwp = fptr(gw);
  const int64_t nb_max = t.chunk_images(), tiles_per = t.per_image();
  const bool reuse_mg = nb_max >= t.n && t_mg_memo.gy == gyp && t_mg_memo.tile == M &&
                        t_mg_memo.shape == gy.shape();
  t_mg_memo = {};
  for (int64_t n0 = 0; n0 < t.n; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, t.n - n0), nt = nb * tiles_per;
    float* v = scratch(0, A2 * t.cin * nt);
    float* mg = scratch(1, A2 * t.cout * nt);
    transform_input<M>(xp, t, n0, nb, v);
    if (!reuse_mg) transform_output_grad<M>(gyp, t, n0, nb, mg);
    // Per block: S = Mg^T V, then dw = G^T S G for each of its filters, added to the earlier
    // chunks' (G^T . G is linear).
    for (int64_t co0 = 0; co0 < t.cout; co0 += cb) {
      const int64_t cn = std::min(cb, t.cout - co0);
      batched_gemm(Product::BackwardWeight, A2, nt, t.cin, t.cout, co0, cn, mg, v, s);
      untransform_weight_grad<M>(s, cn * t.cin, gwp + co0 * t.cin * 9, n0 > 0);
    }
  }
}

}  // namespace

void winograd_forget() { t_mg_memo = {}; }

void set_winograd_limits(WinogradLimits l) { forced_limits() = l; }

bool winograd_eligible(const Shape& w, const Conv2dParams& p) {
  return w[2] == 3 && w[3] == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
         p.dilation_w == 1 && p.groups == 1;
}

void winograd_forward(int tile, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                      const Conv2dParams& p) {
  tile == 4 ? forward<4>(x, w, b, y, p) : forward<2>(x, w, b, y, p);
}

void winograd_backward_data(int tile, const Tensor& gy, const Tensor& w, Tensor& gx,
                            const Conv2dParams& p) {
  tile == 4 ? backward_data<4>(gy, w, gx, p) : backward_data<2>(gy, w, gx, p);
}

void winograd_backward_weight(int tile, const Tensor& gy, const Tensor& x, Tensor& gw,
                              const Conv2dParams& p) {
  tile == 4 ? backward_weight<4>(gy, x, gw, p) : backward_weight<2>(gy, x, gw, p);
}

}  // namespace engine::cpu
