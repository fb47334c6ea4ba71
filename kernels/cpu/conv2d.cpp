// CPU conv2d by im2col + SGEMM (OpenBLAS): conv2d_im2col_gemm. Winograd (conv2d_winograd.cpp) and
// depthwise (conv2d_depthwise.cpp) layers branch off at the top of each pass.
// Forward: col[K = Cin_g*kH*kW, nb*OHW] gathers the receptive fields of a chunk of nb images side
// by side, Y[Cout, nb*OHW] = W col is one GEMM, and a copy puts Y back in NCHW order: the output
// pass, which adds the bias and applies Conv2dParams::activation (the epilogue) while the chunk is
// in cache. Backward data: dcol = W^T dY, scattered back by col2im. Backward weight:
// dW += dY col^T.
// Batching images into one GEMM matters for the small late layers: the study's 1024->1024 conv
// at 16x16 is 1024x9216x256 per image (62% of the SGEMM peak measured here) but 1024x9216x2048
// for a chunk of 8 (near the peak). Chunks keep col under kColBudget floats. Grouped convs and
// 1x1 stride-1 convs (which use x itself as col) go one image and one group at a time, the output
// pass over each image's y after its GEMMs.
// The epilogue costs no memory traffic of its own (y is written once either way), only its
// arithmetic per output: a compare or two for ReLU/ReLU6, against 2*K FLOPs of the convolution;
// sigmoid/tanh add a Cephes exp polynomial and a divide (about 20 FLOPs, vectorised), the same
// functions as the activation kernel (cpu_util.h), so the result is the separate activation's.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv2d_depthwise.h"
#include "kernels/cpu/conv2d_direct.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

// Largest im2col buffer, in floats (96 MB): the chunk of images is sized to fit.
constexpr int64_t kColBudget = 24 << 20;

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
  g.direct =
      g.kh == 1 && g.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  return g;
}

// col[(c*kH + i)*kW + j, oy*OW + ox] = x[c, oy*s - p + i*d, ox*s - p + j*d] (0 outside).
// Rows of col are ld floats apart, so several images can sit side by side.
void im2col(const float* x, const Geometry& g, const Conv2dParams& p, float* col, int64_t ld) {
#pragma omp parallel for schedule(static) if (g.k * g.ohw > kParallelGrain)
  for (int64_t r = 0; r < g.k; ++r) {
    const int64_t c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
    const float* xc = x + c * g.h * g.w;
    float* out = col + r * ld;
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
void col2im(const float* col, const Geometry& g, const Conv2dParams& p, float* dx, int64_t ld) {
  const int64_t taps = g.kh * g.kw;
#pragma omp parallel for schedule(static) if (g.k * g.ohw > kParallelGrain)
  for (int64_t c = 0; c < g.cin_g; ++c) {
    float* dxc = dx + c * g.h * g.w;
    std::fill(dxc, dxc + g.h * g.w, 0.f);
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t i = t / g.kw, j = t % g.kw;
      const float* in = col + (c * taps + t) * ld;
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

// Which algorithm a convolution uses, from bench_conv_cpu's measurements of every layer of the
// custom CNNs at widths 0.25, 0.5 and 1 (bench/RESULTS.md, "Winograd on vectors of channels"),
// in GFLOP/s of a whole step (forward and both gradients). The list below is the rule of AVX2
// builds, measured on an AMD EPYC before the Winograd weight transforms were vectorised and their
// GEMMs shared out among the threads (both of which favour F(4x4) most); AVX-512 builds, measured
// since, have their own rule at the top of winograd_tile and use_direct:
// - im2col below 16 input channels (or 8 output channels), where Winograd's products are too thin
//   for the cost of its transforms (8->16 at 32x32, batch 32: 26 for im2col, 22 for F(4x4,3x3));
// - F(4x4,3x3) for outputs of at least 32x32 (16->16 at 32x32, batch 32: 47 against 28 for
//   im2col; 256->256 at 32x32, batch 8: 255 against 187 for F(2x2,3x3) and 116 for im2col),
//   but F(2x2,3x3) where Cin x Cout > 256 x 512: F(4x4)'s 36 transformed weight planes are rebuilt
//   in each pass (151 MB for 1024 -> 1024), which costs it the lead (289 for F(2x2) against 211)
//   and memory;
// - on smaller outputs F(2x2,3x3) from 32 input channels (64->64 at 16x16, batch 32: 127 against
//   87 for im2col), im2col below. F(4x4) would be faster there too (165), but its larger error
//   (about 3x F(2x2)'s, within the per-op parity tolerance) doubled ResNet-50's head gradient
//   error in its train-mode parity test at 64x64 inputs (2.0e-4 against the test's 1e-4; F(2x2)
//   9.9e-5, im2col 9.3e-5), whose BatchNorm over 2 images of 2x2 to 16x16 amplifies it;
// - but im2col when the batch has fewer than 64 F(2x2) tiles, where rebuilding the transformed
//   weights each pass costs more than the products save (ResNet-50 at 64x64, batch 2, one
//   thread: 256->256 at 4x4, 8 tiles, 25 GFLOP/s against 55 for im2col; 512->512 at 2x2, 3
//   against 27; 128->128 at 8x8, 32 tiles, 60 against 57).
// ENGINE_CONV_ALGO=im2col|winograd2|winograd4|direct, or set_conv_algorithm(), forces one.
ConvAlgorithm& conv_algorithm_setting() {
  static ConvAlgorithm a = [] {
    const std::string e = std::getenv("ENGINE_CONV_ALGO") ? std::getenv("ENGINE_CONV_ALGO") : "";
    if (e == "im2col") return ConvAlgorithm::Im2col;
    if (e == "winograd2") return ConvAlgorithm::Winograd2;
    if (e == "winograd4") return ConvAlgorithm::Winograd4;
    if (e == "direct") return ConvAlgorithm::Direct;
    return ConvAlgorithm::Auto;
  }();
  return a;
}

// The Winograd tile size M to use (2 or 4), or 0 for im2col.
int winograd_tile(const Shape& w, const Shape& y, const Conv2dParams& p) {
  if (!winograd_eligible(w, p)) return 0;
  switch (conv_algorithm_setting()) {
    case ConvAlgorithm::Im2col:
    case ConvAlgorithm::Direct:
      return 0;
    case ConvAlgorithm::Winograd2:
      return 2;
    case ConvAlgorithm::Winograd4:
      return 4;
    case ConvAlgorithm::Auto:
      break;
  }
  if (w[1] < 16 || w[0] < 8) return 0;
  // With AVX-512, vectorised weight transforms and the GEMMs shared out among the threads,
  // F(4x4) wins from 32 input channels at any output size down to 8x8 once the batch has 128
  // tiles of 4x4 (bench_conv_cpu, the three passes, against the best other algorithm: batch 8,
  // 32x32: 64->64 6.2 ms against 8.3 (direct); 16x16: 64->128 2.7 against 3.7 (F(2x2)), 256->256
  // 12.9 against 18.6 (F(2x2)), 1024->1024 197 against 265 (F(2x2)); batch 32, 8x8: 64->128 2.6
  // against 3.9 (F(2x2))). use_direct keeps the layers with fewer channels.
  const int64_t tiles4 = y[0] * ((y[2] + 3) / 4) * ((y[3] + 3) / 4);
  if (kWideVectors && w[1] >= 32 && tiles4 >= 128) return 4;
  if (std::min(y[2], y[3]) >= 32) return w[0] * w[1] > 256 * 512 ? 2 : 4;
  const int64_t tiles = y[0] * ((y[2] + 1) / 2) * ((y[3] + 1) / 2);
  return w[1] >= 32 && tiles >= 64 ? 2 : 0;
}

// The direct convolution (conv2d_direct.cpp), per pass. It has no transform or packing to
// amortise, so it wins where the channels are few. From bench_conv_cpu at widths 0.5 and 0.25
// (batch 8 at 64x64, batch 32 at 32x32; bench/RESULTS.md), step GFLOP/s direct against the best
// of im2col and Winograd: 8->16 at 32x32 72 / 31, 16->32 at 64x64 78 / 51, 32->32 at 64x64 86 /
// 61; forward and backward data also win below 32x32 up to 64 -> 128 channels (64->128 at 8x8,
// forward 143 against 102), backward weight (4 channels x 3 taps a tile, every image's gy
// streamed per input channel) only up to 32 -> 64 there (32->64 at 16x16: 4.7 ms against 5.4;
// 64->64: 8.8 against 7.2; 32->64 at 32x32: 4.3 against 3.6).
// With AVX-512 (measured on a 2-core Xeon, same benchmark; F(4x4) as winograd_tile runs it) the
// direct kernel's rows are 16 lanes, and it wins every pass up to 16 input channels (16->32 at
// 64x64, batch 8: 1.3 / 1.6 / 2.4 ms against F(4x4)'s 2.2 / 2.4 / 3.0), forward and backward data
// up to 32 -> 64 channels on outputs of 32x32 and more (32->64 at 64x64: 4.6 / 5.7 against 6.0 /
// 6.6); not at 16x16 (32->64, batch 32: 1.2 / 1.4 against 1.1 / 1.2), nor backward weight from 32
// input channels (32->32 at 64x64: 4.4 against 4.1; 32->64 at 32x32: 1.8 against 1.5).
enum class Pass { Forward, Data, Weight };
bool use_direct(const Shape& w, const Shape& y, const Conv2dParams& p, Pass pass) {
  if (!direct_eligible(w, p)) return false;
  if (conv_algorithm_setting() != ConvAlgorithm::Auto)
    return conv_algorithm_setting() == ConvAlgorithm::Direct;
  const int64_t cin = w[1], cout = w[0];
  if (kWideVectors) {
    // AVX-512: F(4x4) takes the rest (winograd_tile).
    if (pass == Pass::Weight) return cin <= 16;
    return cin <= 16 || (cin <= 32 && cout <= 64 && std::min(y[2], y[3]) >= 32);
  }
  const bool few = cin <= 16 || (cin <= 32 && cout <= 32);
  const bool below32 = std::min(y[2], y[3]) < 32;
  if (pass == Pass::Weight) return few || (below32 && cin <= 32 && cout <= 64);
  return few || (below32 && cin <= 64 && cout <= 128);
}

// Depthwise layers go plane by plane (conv2d_depthwise.cpp) unless im2col is forced.
bool use_depthwise(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return conv_algorithm_setting() != ConvAlgorithm::Im2col && depthwise_eligible(x, w, p);
}

// Images per chunk for the batched path (0: use the per-image path). A direct 1x1 conv on a small
// plane is batched too: per image its GEMM is Cout x OHW x Cin with OHW = 196 or 49 (ResNet-50's
// layer3/layer4), too thin for the BLAS kernels; side by side the images make one wide GEMM, for
// the price of copying x into col (im2col of a 1x1 conv) and y back.
constexpr int64_t kDirectBatchBelow = 1024;
int64_t chunk_images(const Geometry& g) {
  if (g.groups != 1 || (g.direct && g.ohw >= kDirectBatchBelow)) return 0;
  return std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, g.k * g.ohw), 1, g.n);
}

// im2col of images [n0, n0 + nb) side by side: image i fills columns [i*OHW, (i+1)*OHW).
void im2col_chunk(const float* x, const Geometry& g, const Conv2dParams& p, int64_t n0, int64_t nb,
                  float* col) {
  for (int64_t i = 0; i < nb; ++i)
    im2col(x + (n0 + i) * g.cin * g.h * g.w, g, p, col + i * g.ohw, nb * g.ohw);
}

// The GEMM operand of image n, group gr on the per-image path: x itself for a direct (1x1,
// stride 1) conv, else its im2col in scratch slot 0.
const float* group_col(const float* x, const Geometry& g, const Conv2dParams& p, int64_t n,
                       int64_t gr) {
  const float* xg = x + (n * g.cin + gr * g.cin_g) * g.h * g.w;
  if (g.direct) return xg;
  float* col = scratch(0, g.k * g.ohw);
  im2col(xg, g, p, col, g.ohw);
  return col;
}

// buf[co, i*OHW + s] <-> t[n0 + i, co, s] for a chunk of nb images.
void gather_chunk(const float* t, const Geometry& g, int64_t c, int64_t n0, int64_t nb,
                  float* buf) {
#pragma omp parallel for collapse(2) schedule(static) if (nb * c * g.ohw > kParallelGrain)
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t co = 0; co < c; ++co)
      std::copy_n(t + ((n0 + i) * c + co) * g.ohw, g.ohw, buf + co * nb * g.ohw + i * g.ohw);
}

// The output pass: dst[s] = act(src[s] + bias) for one output channel's ohw values (src may be
// dst). act is an ActivationFn or IdentityFn (cpu_util.h), so the loop has no switch inside.
// Without a bias the callers pass -0.f, the one float whose addition changes nothing (v + 0.f
// would turn -0 into +0).
template <typename Act>
inline void bias_activation(const float* src, float* dst, int64_t ohw, float bias, Act act) {
#pragma omp simd
  for (int64_t s = 0; s < ohw; ++s) dst[s] = act(src[s] + bias);
}

template <typename Act>
void forward(const float* xp, const float* wp, const float* bp, float* yp, const Geometry& g,
             const Conv2dParams& p, Act act) {
  if (const int64_t nb_max = chunk_images(g)) {
    for (int64_t n0 = 0; n0 < g.n; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.n - n0), ld = nb * g.ohw;
      float* col = scratch(0, g.k * ld);
      float* out = scratch(1, g.cout * ld);
      im2col_chunk(xp, g, p, n0, nb, col);
      sgemm(false, false, g.cout, ld, g.k, wp, g.k, col, ld, 0.f, out, ld);
      // The copy back to NCHW is the output pass: bias and activation while the chunk is hot.
#pragma omp parallel for collapse(2) schedule(static) if (g.cout * ld > kParallelGrain)
      for (int64_t i = 0; i < nb; ++i) {
        for (int64_t co = 0; co < g.cout; ++co) {
          bias_activation(out + co * ld + i * g.ohw, yp + ((n0 + i) * g.cout + co) * g.ohw, g.ohw,
                          bp ? bp[co] : -0.f, act);
        }
      }
    }
    return;
  }
  // Per image and group, the GEMM writes y directly; the output pass then runs over the image's
  // Cout x OHW block just written, before the next image's GEMMs evict it (skipped with neither
  // bias nor activation).
  constexpr bool kIdentity = std::is_same_v<Act, IdentityFn>;
  for (int64_t n = 0; n < g.n; ++n) {
    float* yn = yp + n * g.cout * g.ohw;
    for (int64_t gr = 0; gr < g.groups; ++gr) {
      const float* c = group_col(xp, g, p, n, gr);
      sgemm(false, false, g.cout_g, g.ohw, g.k, wp + gr * g.cout_g * g.k, g.k, c, g.ohw, 0.f,
            yn + gr * g.cout_g * g.ohw, g.ohw);
    }
    if (!bp && kIdentity) continue;
#pragma omp parallel for schedule(static) if (g.cout * g.ohw > kParallelGrain)
    for (int64_t co = 0; co < g.cout; ++co) {
      float* row = yn + co * g.ohw;
      bias_activation(row, row, g.ohw, bp ? bp[co] : -0.f, act);
    }
  }
}

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  winograd_forget();
  if (use_direct(w.shape(), y.shape(), p, Pass::Forward)) return direct_forward(x, w, b, y, p);
  if (int m = winograd_tile(w.shape(), y.shape(), p)) return winograd_forward(m, x, w, b, y, p);
  if (use_depthwise(x.shape(), w.shape(), p)) return depthwise_forward(x, w, b, y, p);
  const Geometry g = geometry(x.shape(), w.shape(), y.shape(), p);
  with_activation(p.activation,
                  [&](auto act) { forward(fptr(x), fptr(w), fptr(b), fptr(y), g, p, act); });
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  winograd_forget();
  if (use_direct(w.shape(), gy.shape(), p, Pass::Data)) return direct_backward_data(gy, w, gx, p);
  if (int m = winograd_tile(w.shape(), gy.shape(), p))
    return winograd_backward_data(m, gy, w, gx, p);
  if (use_depthwise(gx.shape(), w.shape(), p)) return depthwise_backward_data(gy, w, gx, p);
  const Geometry g = geometry(gx.shape(), w.shape(), gy.shape(), p);
  const float *gyp = fptr(gy), *wp = fptr(w);
  float* gxp = fptr(gx);
  if (const int64_t nb_max = chunk_images(g)) {
    for (int64_t n0 = 0; n0 < g.n; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, g.n - n0), ld = nb * g.ohw;
      float* dy = scratch(1, g.cout * ld);
      float* dcol = scratch(0, g.k * ld);
      gather_chunk(gyp, g, g.cout, n0, nb, dy);
      sgemm(true, false, g.k, ld, g.cout, wp, g.k, dy, ld, 0.f, dcol, ld);
      for (int64_t i = 0; i < nb; ++i)
        col2im(dcol + i * g.ohw, g, p, gxp + (n0 + i) * g.cin * g.h * g.w, ld);
    }
    return;
  }
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t gr = 0; gr < g.groups; ++gr) {
      const float* gyg = gyp + (n * g.cout + gr * g.cout_g) * g.ohw;
      float* gxg = gxp + (n * g.cin + gr * g.cin_g) * g.h * g.w;
      float* c = g.direct ? gxg : scratch(0, g.k * g.ohw);
      sgemm(true, false, g.k, g.ohw, g.cout_g, wp + gr * g.cout_g * g.k, g.k, gyg, g.ohw, 0.f, c,
            g.ohw);
      if (!g.direct) col2im(c, g, p, gxg, g.ohw);
    }
  }
}

void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb,
                            const Conv2dParams& p) {
  const float *gyp = fptr(gy), *xp = fptr(x);
  const bool direct = gw.defined() && use_direct(gw.shape(), gy.shape(), p, Pass::Weight);
  const int m = gw.defined() && !direct ? winograd_tile(gw.shape(), gy.shape(), p) : 0;
  if (!m) winograd_forget();  // the Winograd path uses (and then forgets) backward_data's Mg
  if (direct) {
    direct_backward_weight(gy, x, gw, p);
  } else if (m) {
    winograd_backward_weight(m, gy, x, gw, p);
  } else if (gw.defined() && use_depthwise(x.shape(), gw.shape(), p)) {
    depthwise_backward_weight(gy, x, gw, p);
  } else if (gw.defined()) {
    const Geometry g = geometry(x.shape(), gw.shape(), gy.shape(), p);
    float* gwp = fptr(gw);
    if (const int64_t nb_max = chunk_images(g)) {
      for (int64_t n0 = 0; n0 < g.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, g.n - n0), ld = nb * g.ohw;
        float* col = scratch(0, g.k * ld);
        float* dy = scratch(1, g.cout * ld);
        im2col_chunk(xp, g, p, n0, nb, col);
        gather_chunk(gyp, g, g.cout, n0, nb, dy);
        sgemm(false, true, g.cout, g.k, ld, dy, ld, col, ld, n0 == 0 ? 0.f : 1.f, gwp, g.k);
      }
    } else {
      for (int64_t n = 0; n < g.n; ++n) {
        for (int64_t gr = 0; gr < g.groups; ++gr) {
          const float* c = group_col(xp, g, p, n, gr);
          const float* gyg = gyp + (n * g.cout + gr * g.cout_g) * g.ohw;
          sgemm(false, true, g.cout_g, g.k, g.ohw, gyg, g.ohw, c, g.ohw, n == 0 ? 0.f : 1.f,
                gwp + gr * g.cout_g * g.k, g.k);
        }
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

void set_conv_algorithm(ConvAlgorithm a) { conv_algorithm_setting() = a; }

void register_conv2d(KernelTable& t) {
  t.conv2d_forward = conv2d_forward;
  t.conv2d_backward_data = conv2d_backward_data;
  t.conv2d_backward_weight = conv2d_backward_weight;
}

}  // namespace engine::cpu
