// conv2d_winograd_f2x3 and conv2d_winograd_f4x3: Winograd minimal filtering F(MxM, 3x3) (Lavin &
// Gray 2016) for 3x3 stride-1 convolutions, forward and both gradients, on the CPU.
//
// Each MxM block of outputs ("tile") is computed from an (M+2)x(M+2) block d of input:
//   Y = A^T [ (G w G^T) (.) (B^T d B) ] A
// where (.) is the element-wise product. Summed over input channels that product is a GEMM per
// position xi of the transformed (M+2)x(M+2) domain:
//   M[xi] (Cout x T) = U[xi] (Cout x Cin) * V[xi] (Cin x T),  T = tiles in the chunk.
// F(2x2,3x3): 16 GEMMs, 16 multiplies per 4 outputs instead of 36 (2.25x fewer).
// F(4x4,3x3): 36 GEMMs, 36 multiplies per 16 outputs instead of 144 (4x fewer), at the price of
// larger transforms and constants (1/24, 8) that cost some float32 accuracy.
// Both gradients are the adjoints of the same linear maps:
//   dd = B [ U (.) (A dY A^T) ] B^T   (backward data: U[xi]^T * Mg[xi], then scatter-add tiles)
//   dw = G^T [ sum_tiles (A dY A^T) (.) (B^T d B) ] G   (backward weight: Mg[xi] * V[xi]^T)
// so forward, backward-data and backward-weight all run the same GEMMs on the same transforms.
// Study shape 1024->1024 at 16x16, batch 8: 38.7 GFLOP direct, 17.2 in F(2x2), 9.7 in F(4x4).
// The bias and Conv2dParams::activation are applied in the output transform, to each MxM block
// while it is in registers: the epilogue adds no pass over y, only a compare (ReLU/ReLU6) or an
// exp polynomial and a divide (sigmoid/tanh) per output.
#include "kernels/cpu/conv2d_winograd.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

// Largest transformed buffer (V or M), in floats, that decides the images per chunk.
constexpr int64_t kBudget = 24 << 20;
// Weight transforms go through blocks of kBlock filters held on the stack, so each plane of U is
// written (or read) kBlock floats at a time: writing all planes one float at a time from each
// filter ran 3x slower (23 ms vs 8 ms for 1024x1024 filters in F(2x2), measured).
constexpr int64_t kBlock = 128;

template <int M>
struct Wino;
template <>
struct Wino<2> {
  static constexpr int A = 4;
  static constexpr float BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float G[4][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
  static constexpr float AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
template <>
struct Wino<4> {
  static constexpr int A = 6;
  static constexpr float BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                     {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                     {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr float G[6][3] = {{1.f / 4, 0, 0},
                                    {-1.f / 6, -1.f / 6, -1.f / 6},
                                    {-1.f / 6, 1.f / 6, -1.f / 6},
                                    {1.f / 24, 1.f / 12, 1.f / 6},
                                    {1.f / 24, -1.f / 12, 1.f / 6},
                                    {0, 0, 1}};
  static constexpr float AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// out = L X R^T, with L [I][P], X [P][Q], R [J][Q]. Sizes are compile-time, so the compiler
// unrolls these and folds the constant 0/1 entries of the transform matrices.
template <int I, int J, int P, int Q>
inline void sandwich(const float (&l)[I][P], const float (&x)[P][Q], const float (&r)[J][Q],
                     float (&out)[I][J]) {
  float t[I][Q];
  for (int i = 0; i < I; ++i)
    for (int q = 0; q < Q; ++q) {
      float s = 0;
      for (int p = 0; p < P; ++p) s += l[i][p] * x[p][q];
      t[i][q] = s;
    }
  for (int i = 0; i < I; ++i)
    for (int j = 0; j < J; ++j) {
      float s = 0;
      for (int q = 0; q < Q; ++q) s += t[i][q] * r[j][q];
      out[i][j] = s;
    }
}

// out = L^T X R, with L [P][I], X [P][Q], R [Q][J].
template <int I, int J, int P, int Q>
inline void sandwich_t(const float (&l)[P][I], const float (&x)[P][Q], const float (&r)[Q][J],
                       float (&out)[I][J]) {
  float t[I][Q];
  for (int i = 0; i < I; ++i)
    for (int q = 0; q < Q; ++q) {
      float s = 0;
      for (int p = 0; p < P; ++p) s += l[p][i] * x[p][q];
      t[i][q] = s;
    }
  for (int i = 0; i < I; ++i)
    for (int j = 0; j < J; ++j) {
      float s = 0;
      for (int q = 0; q < Q; ++q) s += t[i][q] * r[q][j];
      out[i][j] = s;
    }
}


template <int M>
struct Tiles {
  static constexpr int A = Wino<M>::A, A2 = A * A;
  int64_t n, cin, cout, h, w, oh, ow, th, tw, pad_h, pad_w;
  Tiles(const Shape& x, const Shape& wt, const Shape& y, const Conv2dParams& p)
      : n(x[0]), cin(x[1]), cout(wt[0]), h(x[2]), w(x[3]), oh(y[2]), ow(y[3]),
        th((y[2] + M - 1) / M), tw((y[3] + M - 1) / M), pad_h(p.pad_h), pad_w(p.pad_w) {}
  int64_t per_image() const { return th * tw; }
  int64_t chunk_images() const {
    const int64_t per = A2 * std::max(cin, cout) * per_image();
    return std::clamp<int64_t>(kBudget / std::max<int64_t>(per, 1), 1, n);
  }
};

// U[xi][co][ci] = (G w[co][ci] G^T)[xi].
template <int M>
void transform_weights(const float* w, int64_t cout, int64_t cin, float* u) {
  using W = Wino<M>;
  constexpr int A2 = W::A * W::A;
  const int64_t plane = cout * cin, blocks = (plane + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t k0 = bl * kBlock, kn = std::min(kBlock, plane - k0);
    float out[A2][kBlock];
    for (int64_t kk = 0; kk < kn; ++kk) {
      float g[3][3], t[W::A][W::A];
      for (int i = 0; i < 9; ++i) g[i / 3][i % 3] = w[(k0 + kk) * 9 + i];
      sandwich(W::G, g, W::G, t);
      for (int xi = 0; xi < A2; ++xi) out[xi][kk] = t[xi / W::A][xi % W::A];
    }
    for (int xi = 0; xi < A2; ++xi) std::copy_n(out[xi], kn, u + xi * plane + k0);
  }
}

// V[xi][c][tile] = (B^T d B)[xi] for the input block d of each tile of images [n0, n0+nb).
template <int M>
void transform_input(const float* x, const Tiles<M>& t, int64_t n0, int64_t nb, float* v) {
  using W = Wino<M>;
  constexpr int A = W::A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per, plane = t.cin * nt;
#pragma omp parallel for collapse(2) schedule(static) if (plane > 1024)
  for (int64_t c = 0; c < t.cin; ++c) {
    for (int64_t i = 0; i < nb; ++i) {
      const float* xc = x + ((n0 + i) * t.cin + c) * t.h * t.w;
      for (int64_t ty = 0; ty < t.th; ++ty) {
        for (int64_t tx = 0; tx < t.tw; ++tx) {
          float d[A][A], q[A][A];
          const int64_t y0 = M * ty - t.pad_h, x0 = M * tx - t.pad_w;
          for (int r = 0; r < A; ++r) {
            const int64_t iy = y0 + r;
            for (int s = 0; s < A; ++s) {
              const int64_t ix = x0 + s;
              d[r][s] = (iy >= 0 && iy < t.h && ix >= 0 && ix < t.w) ? xc[iy * t.w + ix] : 0.f;
            }
          }
          sandwich(W::BT, d, W::BT, q);
          const int64_t col = c * nt + i * tiles_per + ty * t.tw + tx;
          for (int xi = 0; xi < A * A; ++xi) v[xi * plane + col] = q[xi / A][xi % A];
        }
      }
    }
  }
}

// Mg[xi][co][tile] = (A dY A^T)[xi] for the MxM output-gradient block of each tile (0 beyond
// the output edge).
template <int M>
void transform_output_grad(const float* gy, const Tiles<M>& t, int64_t n0, int64_t nb,
                           float* mg) {
  using W = Wino<M>;
  constexpr int A = W::A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per, plane = t.cout * nt;
#pragma omp parallel for collapse(2) schedule(static) if (plane > 1024)
  for (int64_t c = 0; c < t.cout; ++c) {
    for (int64_t i = 0; i < nb; ++i) {
      const float* gc = gy + ((n0 + i) * t.cout + c) * t.oh * t.ow;
      for (int64_t ty = 0; ty < t.th; ++ty) {
        for (int64_t tx = 0; tx < t.tw; ++tx) {
          float dy[M][M], q[A][A];
          for (int a = 0; a < M; ++a) {
            const int64_t oy = M * ty + a;
            for (int b = 0; b < M; ++b) {
              const int64_t ox = M * tx + b;
              dy[a][b] = (oy < t.oh && ox < t.ow) ? gc[oy * t.ow + ox] : 0.f;
            }
          }
          sandwich_t(W::AT, dy, W::AT, q);
          const int64_t col = c * nt + i * tiles_per + ty * t.tw + tx;
          for (int xi = 0; xi < A * A; ++xi) mg[xi * plane + col] = q[xi / A][xi % A];
        }
      }
    }
  }
}

// For each of the A*A positions: out[xi] = op(a[xi]) * op(b[xi]), each (m x n), inner k.
void batched_gemm(int count, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a,
                  const float* b, float beta, float* out) {
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  for (int xi = 0; xi < count; ++xi)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, 1.f, a + xi * m * k, lda, b + xi * k * n, ldb, beta, out + xi * m * n, n);
}

// y[tile] = act(A^T M[tile] A + b) for the tiles of images [n0, n0+nb): the output transform,
// with bias and activation applied to each MxM block while it is in registers.
template <int M, typename Act>
void transform_output(const float* m, const float* bp, const Tiles<M>& t, int64_t n0, int64_t nb,
                      float* yp, Act act) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const int64_t tiles_per = t.per_image(), nt = nb * tiles_per, plane = t.cout * nt;
#pragma omp parallel for collapse(2) schedule(static) if (plane > 1024)
  for (int64_t c = 0; c < t.cout; ++c) {
    for (int64_t i = 0; i < nb; ++i) {
      float* yc = yp + ((n0 + i) * t.cout + c) * t.oh * t.ow;
      const float bias = bp ? bp[c] : -0.f;  // -0.f: adding it changes nothing, not even -0
      for (int64_t ty = 0; ty < t.th; ++ty) {
        for (int64_t tx = 0; tx < t.tw; ++tx) {
          const int64_t col = c * nt + i * tiles_per + ty * t.tw + tx;
          float q[A][A], r[M][M];
          for (int xi = 0; xi < A2; ++xi) q[xi / A][xi % A] = m[xi * plane + col];
          sandwich(W::AT, q, W::AT, r);
          for (int a = 0; a < M && M * ty + a < t.oh; ++a) {
            float* row = yc + (M * ty + a) * t.ow + M * tx;
            for (int s = 0; s < M && M * tx + s < t.ow; ++s) row[s] = act(r[a][s] + bias);
          }
        }
      }
    }
  }
}

template <int M>
void forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dParams& p) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const Tiles<M> t(x.shape(), w.shape(), y.shape(), p);
  float* u = scratch(2, A2 * t.cout * t.cin);
  transform_weights<M>(fptr(w), t.cout, t.cin, u);
  const float *xp = fptr(x), *bp = fptr(b);
  float* yp = fptr(y);
  const int64_t nb_max = t.chunk_images(), tiles_per = t.per_image();
  for (int64_t n0 = 0; n0 < t.n; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, t.n - n0), nt = nb * tiles_per;
    float* v = scratch(0, A2 * t.cin * nt);
    float* m = scratch(1, A2 * t.cout * nt);
    transform_input<M>(xp, t, n0, nb, v);
    batched_gemm(A2, false, false, t.cout, nt, t.cin, u, v, 0.f, m);
    with_activation(p.activation,
                    [&](auto act) { transform_output<M>(m, bp, t, n0, nb, yp, act); });
  }
}

template <int M>
void backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const Tiles<M> t(gx.shape(), w.shape(), gy.shape(), p);
  float* u = scratch(2, A2 * t.cout * t.cin);
  transform_weights<M>(fptr(w), t.cout, t.cin, u);
  const float* gyp = fptr(gy);
  float* gxp = fptr(gx);
  const int64_t nb_max = t.chunk_images(), tiles_per = t.per_image();
  for (int64_t n0 = 0; n0 < t.n; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, t.n - n0), nt = nb * tiles_per;
    float* mg = scratch(1, A2 * t.cout * nt);
    float* vg = scratch(0, A2 * t.cin * nt);
    transform_output_grad<M>(gyp, t, n0, nb, mg);
    batched_gemm(A2, true, false, t.cin, nt, t.cout, u, mg, 0.f, vg);
    // dd = B Vg B^T per tile, scatter-added: neighbouring tiles overlap by two rows/columns.
    // Parallel over (image, channel) planes, which no two threads share.
    const int64_t plane = t.cin * nt;
#pragma omp parallel for collapse(2) schedule(static) if (plane > 1024)
    for (int64_t i = 0; i < nb; ++i) {
      for (int64_t c = 0; c < t.cin; ++c) {
        float* dc = gxp + ((n0 + i) * t.cin + c) * t.h * t.w;
        std::fill(dc, dc + t.h * t.w, 0.f);
        for (int64_t ty = 0; ty < t.th; ++ty) {
          for (int64_t tx = 0; tx < t.tw; ++tx) {
            const int64_t col = c * nt + i * tiles_per + ty * t.tw + tx;
            float q[A][A], d[A][A];
            for (int xi = 0; xi < A2; ++xi) q[xi / A][xi % A] = vg[xi * plane + col];
            sandwich_t(W::BT, q, W::BT, d);
            const int64_t y0 = M * ty - t.pad_h, x0 = M * tx - t.pad_w;
            for (int a = 0; a < A; ++a) {
              const int64_t iy = y0 + a;
              if (iy < 0 || iy >= t.h) continue;
              float* row = dc + iy * t.w;
              for (int s = 0; s < A; ++s) {
                const int64_t ix = x0 + s;
                if (ix >= 0 && ix < t.w) row[ix] += d[a][s];
              }
            }
          }
        }
      }
    }
  }
}

template <int M>
void backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, const Conv2dParams& p) {
  using W = Wino<M>;
  constexpr int A = W::A, A2 = A * A;
  const Tiles<M> t(x.shape(), gw.shape(), gy.shape(), p);
  float* s = scratch(2, A2 * t.cout * t.cin);
  const float *gyp = fptr(gy), *xp = fptr(x);
  const int64_t nb_max = t.chunk_images(), tiles_per = t.per_image();
  for (int64_t n0 = 0; n0 < t.n; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, t.n - n0), nt = nb * tiles_per;
    float* v = scratch(0, A2 * t.cin * nt);
    float* mg = scratch(1, A2 * t.cout * nt);
    transform_input<M>(xp, t, n0, nb, v);
    transform_output_grad<M>(gyp, t, n0, nb, mg);
    batched_gemm(A2, false, true, t.cout, t.cin, nt, mg, v, n0 == 0 ? 0.f : 1.f, s);
  }
  // dw = G^T S G for each (co, ci), a block of filters at a time (see kBlock).
  float* gwp = fptr(gw);
  const int64_t plane = t.cout * t.cin, blocks = (plane + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (plane > 4096)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t k0 = bl * kBlock, kn = std::min(kBlock, plane - k0);
    float in[A2][kBlock];
    for (int xi = 0; xi < A2; ++xi) std::copy_n(s + xi * plane + k0, kn, in[xi]);
    for (int64_t kk = 0; kk < kn; ++kk) {
      float q[A][A], g[3][3];
      for (int xi = 0; xi < A2; ++xi) q[xi / A][xi % A] = in[xi][kk];
      sandwich_t(W::G, q, W::G, g);
      for (int i = 0; i < 9; ++i) gwp[(k0 + kk) * 9 + i] = g[i / 3][i % 3];
    }
  }
}

}  // namespace

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
