// conv2d_depthwise_direct: convolutions where every output channel reads one input channel
// (groups == Cin: MobileNetV2's 3x3 depthwise layers, stride 1 or 2), computed plane by plane
// without im2col or GEMM. On the GEMM path each (image, channel) pair was one im2col of 9 x OHW
// floats and one 1 x OHW x 9 SGEMM call: thousands of calls per batch, each too small to reach
// the BLAS kernels, run one after another. Here the planes are independent, so they are
// spread over the threads, and each output row accumulates kH x kW shifted input rows (a
// contiguous, vectorisable loop at stride 1; a strided one at stride 2).
// Work for MobileNetV2's features.2 depthwise (96 channels, 112x112 -> 56x56, stride 2, batch 32):
// 2 x 9 x 96 x 56^2 x 32 = 173 MFLOP over 154 MB of input: memory-bound, as every depthwise conv.
// Forward applies bias and Conv2dParams::activation when each output row is stored. Backward data
// scatters each output gradient over its window (one plane per thread, so no races); backward
// weight sums x windows times gy per channel over the batch.
#include <algorithm>
#include <vector>

#include "kernels/cpu/conv2d_depthwise.h"
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

struct Plane {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, mult;  // mult = Cout / Cin
};

Plane plane(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  return {x[0], x[1], x[2], x[3], y[2], y[3], w[2], w[3], p.stride_h, p.stride_w,
          p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, w[0] / x[1]};
}

// The output columns [lo, hi) whose input column ox*s - p + j*d lies inside [0, W).
inline void valid_cols(const Plane& g, int64_t j, int64_t& lo, int64_t& hi) {
  const int64_t off = j * g.dw - g.pw;  // input column = ox * sw + off
  lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
  hi = g.w - off <= 0 ? 0 : std::min(g.ow, (g.w - off + g.sw - 1) / g.sw);
}

template <typename Act>
void forward_plane(const float* x, const float* w, float bias, float* y, const Plane& g, Act act,
                   float* acc) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    std::fill(acc, acc + g.ow, 0.f);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = oy * g.sh - g.ph + i * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      const float* row = x + iy * g.w;
      for (int64_t j = 0; j < g.kw; ++j) {
        const float wv = w[i * g.kw + j];
        const int64_t off = j * g.dw - g.pw;
        int64_t lo, hi;
        valid_cols(g, j, lo, hi);
        if (g.sw == 1) {
#pragma omp simd
          for (int64_t ox = lo; ox < hi; ++ox) acc[ox] += wv * row[ox + off];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) acc[ox] += wv * row[ox * g.sw + off];
        }
      }
    }
    float* out = y + oy * g.ow;
#pragma omp simd
    for (int64_t ox = 0; ox < g.ow; ++ox) out[ox] = act(acc[ox] + bias);
  }
}

}  // namespace

bool depthwise_eligible(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return p.groups > 1 && p.groups == x[1] && w[1] == 1;
}

void depthwise_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                       const Conv2dParams& p) {
  const Plane g = plane(x.shape(), w.shape(), y.shape(), p);
  const float *xp = fptr(x), *wp = fptr(w), *bp = fptr(b);
  float* yp = fptr(y);
  const int64_t cout = g.c * g.mult, k = g.kh * g.kw;
  with_activation(p.activation, [&](auto act) {
#pragma omp parallel
    {
      std::vector<float> acc(size_t(g.ow));
#pragma omp for schedule(static)
      for (int64_t nc = 0; nc < g.n * cout; ++nc) {
        const int64_t n = nc / cout, co = nc % cout, ci = co / g.mult;
        forward_plane(xp + (n * g.c + ci) * g.h * g.w, wp + co * k, bp ? bp[co] : -0.f,
                      yp + nc * g.oh * g.ow, g, act, acc.data());
      }
    }
  });
}

void depthwise_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx,
                             const Conv2dParams& p) {
  const Plane g = plane(gx.shape(), w.shape(), gy.shape(), p);
  const float *gyp = fptr(gy), *wp = fptr(w);
  float* gxp = fptr(gx);
  const int64_t k = g.kh * g.kw;
  // One input plane per iteration: it gathers from its mult output planes, so threads never
  // write the same memory.
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc) {
    const int64_t n = nc / g.c, ci = nc % g.c;
    float* dx = gxp + nc * g.h * g.w;
    std::fill(dx, dx + g.h * g.w, 0.f);
    for (int64_t m = 0; m < g.mult; ++m) {
      const int64_t co = ci * g.mult + m;
      const float* dy = gyp + (n * g.c * g.mult + co) * g.oh * g.ow;
      const float* wc = wp + co * k;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t iy = oy * g.sh - g.ph + i * g.dh;
          if (iy < 0 || iy >= g.h) continue;
          float* row = dx + iy * g.w;
          const float* dyr = dy + oy * g.ow;
          for (int64_t j = 0; j < g.kw; ++j) {
            const float wv = wc[i * g.kw + j];
            const int64_t off = j * g.dw - g.pw;
            int64_t lo, hi;
            valid_cols(g, j, lo, hi);
            if (g.sw == 1) {
#pragma omp simd
              for (int64_t ox = lo; ox < hi; ++ox) row[ox + off] += wv * dyr[ox];
            } else {
              for (int64_t ox = lo; ox < hi; ++ox) row[ox * g.sw + off] += wv * dyr[ox];
            }
          }
        }
      }
    }
  }
}

void depthwise_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw,
                               const Conv2dParams& p) {
  const Plane g = plane(x.shape(), gw.shape(), gy.shape(), p);
  const float *gyp = fptr(gy), *xp = fptr(x);
  float* gwp = fptr(gw);
  const int64_t cout = g.c * g.mult, k = g.kh * g.kw;
  // One output channel's kH x kW weights per iteration, summed over the batch in double (a
  // channel's sum runs over N x OH x OW products).
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < cout; ++co) {
    const int64_t ci = co / g.mult;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t off = j * g.dw - g.pw;
        int64_t lo, hi;
        valid_cols(g, j, lo, hi);
        double sum = 0;
        for (int64_t n = 0; n < g.n; ++n) {
          const float* dy = gyp + (n * cout + co) * g.oh * g.ow;
          const float* xc = xp + (n * g.c + ci) * g.h * g.w;
          for (int64_t oy = 0; oy < g.oh; ++oy) {
            const int64_t iy = oy * g.sh - g.ph + i * g.dh;
            if (iy < 0 || iy >= g.h) continue;
            const float* row = xc + iy * g.w;
            const float* dyr = dy + oy * g.ow;
            float part = 0;
            if (g.sw == 1) {
#pragma omp simd reduction(+ : part)
              for (int64_t ox = lo; ox < hi; ++ox) part += dyr[ox] * row[ox + off];
            } else {
              for (int64_t ox = lo; ox < hi; ++ox) part += dyr[ox] * row[ox * g.sw + off];
            }
            sum += part;
          }
        }
        gwp[co * k + i * g.kw + j] = static_cast<float>(sum);
      }
    }
  }
}

}  // namespace engine::cpu
