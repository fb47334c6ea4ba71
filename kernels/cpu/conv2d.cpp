// CPU conv2d by im2col + SGEMM (OpenBLAS), one image and one group at a time.
// Forward: col[K = Cin_g*kH*kW, OHW] gathers the receptive fields; Y_g[Cout_g, OHW] = W_g col.
// Backward data: dcol = W_g^T dY_g, scattered back by col2im. Backward weight:
// dW_g += dY_g col^T over the batch. A 1x1 convolution with stride 1 and no padding uses x
// itself as col. For the study's largest layer (1024->1024, 16x16, batch 8) the GEMMs are
// 1024x9216x256 per image: 4.8 GFLOP, compute-bound, so im2col's copy is a few percent.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

struct Geometry {
  int64_t n, cin, h, w, cout, kh, kw, oh, ow, groups, cin_g, cout_g, k, ohw;
  bool direct;  // 1x1, stride 1, no padding: col is the input itself
};

Geometry geometry(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  Geometry g{};
  g.n = x[0], g.cin = x[1], g.h = x[2], g.w = x[3];
  g.cout = w[0], g.kh = w[2], g.kw = w[3];
  g.oh = y[2], g.ow = y[3];
  g.groups = p.groups;
  g.cin_g = g.cin / g.groups, g.cout_g = g.cout / g.groups;
  g.k = g.cin_g * g.kh * g.kw;
  g.ohw = g.oh * g.ow;
  g.direct = g.kh == 1 && g.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
             p.pad_w == 0;
  return g;
}

// col[(c*kH + i)*kW + j, oy*OW + ox] = x[c, oy*s - p + i*d, ox*s - p + j*d] (0 outside).
void im2col(const float* x, const Geometry& g, const Conv2dParams& p, float* col) {
#pragma omp parallel for schedule(static) if (g.k * g.ohw > kParallelGrain)
  for (int64_t r = 0; r < g.k; ++r) {
    const int64_t c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
    const float* xc = x + c * g.h * g.w;
    float* out = col + r * g.ohw;
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      const int64_t iy = oy * p.stride_h - p.pad_h + i * p.dilation_h;
      float* row = out + oy * g.ow;
      if (iy < 0 || iy >= g.h) {
        std::fill(row, row + g.ow, 0.f);
        continue;
      }
      const float* xr = xc + iy * g.w;
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t ix = ox * p.stride_w - p.pad_w + j * p.dilation_w;
        row[ox] = (ix >= 0 && ix < g.w) ? xr[ix] : 0.f;
      }
    }
  }
}

// The adjoint of im2col: dx[c, iy, ix] += col[...]. Parallel over channels, whose dx planes are
// disjoint, so no two threads write the same element.
void col2im(const float* col, const Geometry& g, const Conv2dParams& p, float* dx) {
  const int64_t taps = g.kh * g.kw;
#pragma omp parallel for schedule(static) if (g.k * g.ohw > kParallelGrain)
  for (int64_t c = 0; c < g.cin_g; ++c) {
    float* dxc = dx + c * g.h * g.w;
    std::fill(dxc, dxc + g.h * g.w, 0.f);
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t i = t / g.kw, j = t % g.kw;
      const float* in = col + (c * taps + t) * g.ohw;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t iy = oy * p.stride_h - p.pad_h + i * p.dilation_h;
        if (iy < 0 || iy >= g.h) continue;
        float* dr = dxc + iy * g.w;
        const float* row = in + oy * g.ow;
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t ix = ox * p.stride_w - p.pad_w + j * p.dilation_w;
          if (ix >= 0 && ix < g.w) dr[ix] += row[ox];
        }
      }
    }
  }
}

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  const Geometry g = geometry(x.shape(), w.shape(), y.shape(), p);
  const float *xp = fptr(x), *wp = fptr(w), *bp = fptr(b);
  float* yp = fptr(y);
  std::vector<float> col(g.direct ? 0 : g.k * g.ohw);
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t gr = 0; gr < g.groups; ++gr) {
      const float* xg = xp + (n * g.cin + gr * g.cin_g) * g.h * g.w;
      const float* c = xg;
      if (!g.direct) {
        im2col(xg, g, p, col.data());
        c = col.data();
      }
      float* yg = yp + (n * g.cout + gr * g.cout_g) * g.ohw;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.cout_g, g.ohw, g.k, 1.f,
                  wp + gr * g.cout_g * g.k, g.k, c, g.ohw, 0.f, yg, g.ohw);
    }
  }
  if (bp) {
#pragma omp parallel for schedule(static) if (y.numel() > kParallelGrain)
    for (int64_t nc = 0; nc < g.n * g.cout; ++nc) {
      float* row = yp + nc * g.ohw;
      const float bias = bp[nc % g.cout];
      for (int64_t i = 0; i < g.ohw; ++i) row[i] += bias;
    }
  }
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  const Geometry g = geometry(gx.shape(), w.shape(), gy.shape(), p);
  const float *gyp = fptr(gy), *wp = fptr(w);
  float* gxp = fptr(gx);
  std::vector<float> col(g.direct ? 0 : g.k * g.ohw);
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t gr = 0; gr < g.groups; ++gr) {
      const float* gyg = gyp + (n * g.cout + gr * g.cout_g) * g.ohw;
      float* gxg = gxp + (n * g.cin + gr * g.cin_g) * g.h * g.w;
      float* c = g.direct ? gxg : col.data();
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.k, g.ohw, g.cout_g, 1.f,
                  wp + gr * g.cout_g * g.k, g.k, gyg, g.ohw, 0.f, c, g.ohw);
      if (!g.direct) col2im(c, g, p, gxg);
    }
  }
}

void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb,
                            const Conv2dParams& p) {
  const float *gyp = fptr(gy), *xp = fptr(x);
  if (gw.defined()) {
    const Geometry g = geometry(x.shape(), gw.shape(), gy.shape(), p);
    float* gwp = fptr(gw);
    std::vector<float> col(g.direct ? 0 : g.k * g.ohw);
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        const float* xg = xp + (n * g.cin + gr * g.cin_g) * g.h * g.w;
        const float* c = xg;
        if (!g.direct) {
          im2col(xg, g, p, col.data());
          c = col.data();
        }
        const float* gyg = gyp + (n * g.cout + gr * g.cout_g) * g.ohw;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.cout_g, g.k, g.ohw, 1.f, gyg,
                    g.ohw, c, g.ohw, n == 0 ? 0.f : 1.f, gwp + gr * g.cout_g * g.k, g.k);
      }
    }
  }
  if (gb.defined()) {
    float* gbp = fptr(gb);
    const int64_t cout = gy.size(1), ohw = gy.size(2) * gy.size(3), nb = gy.size(0);
#pragma omp parallel for schedule(static) if (gy.numel() > kParallelGrain)
    for (int64_t c = 0; c < cout; ++c) {
      double s = 0;
      for (int64_t n = 0; n < nb; ++n) {
        const float* row = gyp + (n * cout + c) * ohw;
        float part = 0;
        for (int64_t i = 0; i < ohw; ++i) part += row[i];
        s += part;
      }
      gbp[c] = static_cast<float>(s);
    }
  }
}

}  // namespace

void register_conv2d(KernelTable& t) {
  t.conv2d_forward = conv2d_forward;
  t.conv2d_backward_data = conv2d_backward_data;
  t.conv2d_backward_weight = conv2d_backward_weight;
}

}  // namespace engine::cpu
