// Direct 3x3 convolution (stride 1, one group) for layers with few channels, where im2col's copy
// of the input and the GEMM's packing cost more than the products (kernels/cpu/conv2d.cpp
// chooses per layer and pass). Everything works on vectors of L consecutive output pixels of one
// row (L = 8, or 16 where the compiler may use AVX-512 and the rows are wider than 8), read
// straight from a zero-padded copy of the input whose rows are rounded up to whole vectors: the
// padding needs no branches and a vector never straddles two rows.
//
// Forward: a register tile of 5 output channels x 2 pixel vectors (10 accumulators). For each
// input channel and each of the 9 taps it loads 2 input vectors (the tap's shifted window) and
// broadcasts 5 weights: 10 fused multiply-adds for 7 loads. The weights are packed per block of 5
// output channels as [c][tap][5] so the broadcasts walk memory in order. The tile's lanes are
// then written out with the bias and activation (the epilogue), only those inside the row.
// Backward data (stride 1) is the same convolution of gy, padded by 2 - pad, with the weights'
// input and output channels swapped and the taps turned by 180 degrees.
// Backward weight: gw[co][ci][i][j] = sum over images and pixels of gy[co] * x[ci] shifted by the
// tap. A tile of 4 output channels x the 3 taps of one kernel row keeps 12 accumulators of L
// pixel-lanes each over every image and pixel (4 gy vectors and 3 input vectors a step: 12
// multiply-adds for 7 loads), summed across lanes at the end. gy is copied with its rows rounded
// up to whole vectors, zeros in the gap, so the lanes past a row's end add nothing.
#include "kernels/cpu/conv2d_direct.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "kernels/cpu/cpu_util.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // Vec never crosses a function boundary outside this file

namespace engine::cpu {

namespace {

// Vectors of L floats: 8 (one AVX2 register) or, where the compiler may use AVX-512, 16 for
// output rows wider than 8 pixels (direct_lanes); narrower rows would leave half of each one
// idle.
template <int L>
struct Lanes {
  typedef float Vec __attribute__((vector_size(L * sizeof(float)), aligned(sizeof(float))));
};
template <int L>
using VecT = typename Lanes<L>::Vec;

constexpr int kCoBlock = 5;    // output channels per register tile
constexpr int kGwCoBlock = 4;  // output channels per backward-weight tile (x 3 taps)
constexpr int kPix = 2;        // pixel vectors per register tile

template <int L>
inline VecT<L> load(const float* p) {
  return *reinterpret_cast<const VecT<L>*>(p);
}
// Every lane v. (VecT<L>{} + v would not do: 0 + -0 is +0, so the compiler must add before it
// broadcasts.)
template <int L, size_t... I>
inline VecT<L> splat_lanes(float v, std::index_sequence<I...>) {
  return VecT<L>{((void)I, v)...};
}
template <int L>
inline VecT<L> splat(float v) {
  return splat_lanes<L>(v, std::make_index_sequence<L>{});
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The first 64-byte boundary at or after p (a buffer of 16 floats more than it needs).
float* align64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// The zero-padded input planes: out[n][c][r][col] = x[n][c][r - ph][col - pw] inside x, else 0;
// rows of wp floats, hp rows. With channel_major the planes are stored [c][n] instead (backward
// weight reads one channel of every image in a row).
void pad_planes(const float* x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t ph, int64_t pw,
                int64_t hp, int64_t wp, float* out, bool channel_major = false) {
#pragma omp parallel for schedule(static) if (n * c * hp * wp > kParallelGrain)
  for (int64_t nc = 0; nc < n * c; ++nc) {
    const float* src = x + nc * h * w;
    float* dst = out + (channel_major ? (nc % c) * n + nc / c : nc) * hp * wp;
    for (int64_t r = 0; r < hp; ++r) {
      float* row = dst + r * wp;
      const int64_t sr = r - ph;
      if (sr < 0 || sr >= h) {
        std::fill_n(row, wp, 0.f);
        continue;
      }
      std::fill_n(row, pw, 0.f);
      std::copy_n(src + sr * w, w, row + pw);
      std::fill_n(row + pw + w, wp - pw - w, 0.f);
    }
  }
}

// The shape of one direct convolution: input planes already padded to hp x wp, output oh x ow
// in vectors of `lanes` (v per row).
struct Plan {
  int64_t n, cin, cout, hp, wp, oh, ow, v, nvec, ntiles;
  int lanes;
};

// aligned_rows: rows of a multiple of L floats, so that with a 64-byte aligned buffer the
// untranslated tap's loads are aligned (the forward pass; backward weight's flat loop would pay
// for the wider rows).
Plan plan(int64_t n, int64_t cin, int64_t cout, int64_t oh, int64_t ow, bool aligned_rows) {
  Plan q{};
  q.n = n, q.cin = cin, q.cout = cout, q.oh = oh, q.ow = ow;
  const int L = q.lanes = direct_lanes(ow);
  q.v = round_up(ow, L) / L;
  q.hp = oh + 2;
  q.wp = aligned_rows ? q.v * L + L : q.v * L + 2;
  q.nvec = oh * q.v;
  q.ntiles = (q.nvec + kPix - 1) / kPix;
  return q;
}

// w[co][ci][3][3] (or, for backward data, the weights read as w[ci][co] turned by 180 degrees)
// packed as [co block][ci][tap][kCoBlock], zeros for the channels past cout.
void pack_weights(const float* w, int64_t cout, int64_t cin, bool transpose_flip, float* out) {
  const int64_t blocks = (cout + kCoBlock - 1) / kCoBlock;
#pragma omp parallel for schedule(static) if (blocks * cin * 9 * kCoBlock > kParallelGrain)
  for (int64_t kb = 0; kb < blocks; ++kb) {
    for (int64_t ci = 0; ci < cin; ++ci) {
      for (int t = 0; t < 9; ++t) {
        for (int q = 0; q < kCoBlock; ++q) {
          const int64_t co = kb * kCoBlock + q;
          float v = 0.f;
          if (co < cout) {
            // transpose_flip: the stored tensor is [cin' = co][cout' = ci], taps reversed.
            v = transpose_flip ? w[(ci * cout + co) * 9 + (8 - t)] : w[(co * cin + ci) * 9 + t];
          }
          out[((kb * cin + ci) * 9 + t) * kCoBlock + q] = v;
        }
      }
    }
  }
}

// Output channels [kb*4, kb*4 + 4) of image n over all its pixels: y = act(conv + bias).
template <int L, typename Act>
void forward_block(const Plan& q, const float* xpad, const float* wpk, const float* bias, float* y,
                   int64_t n, int64_t kb, Act act) {
  const int64_t plane = q.hp * q.wp;
  const float* xn = xpad + n * q.cin * plane;
  const float* wk = wpk + kb * q.cin * 9 * kCoBlock;
  const int64_t co0 = kb * kCoBlock, cos = std::min<int64_t>(kCoBlock, q.cout - co0);
  float b[kCoBlock];
  for (int cb = 0; cb < kCoBlock; ++cb) b[cb] = cb < cos && bias ? bias[co0 + cb] : -0.f;
  for (int64_t t = 0; t < q.ntiles; ++t) {
    int64_t off[kPix], row[kPix], col[kPix];
    for (int p = 0; p < kPix; ++p) {
      const int64_t vi = std::min(t * kPix + p, q.nvec - 1);  // the last tile may repeat one
      row[p] = vi / q.v, col[p] = vi % q.v * L;
      off[p] = row[p] * q.wp + col[p];
    }
    VecT<L> acc[kCoBlock][kPix] = {};
    for (int64_t c = 0; c < q.cin; ++c) {
      const float* xc = xn + c * plane;
      const float* wc = wk + c * 9 * kCoBlock;
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
          const int64_t d = i * q.wp + j;
          VecT<L> xv[kPix];
          for (int p = 0; p < kPix; ++p) xv[p] = load<L>(xc + off[p] + d);
          const float* wt = wc + (i * 3 + j) * kCoBlock;
          for (int cb = 0; cb < kCoBlock; ++cb) {
            const VecT<L> wv = splat<L>(wt[cb]);
            for (int p = 0; p < kPix; ++p) acc[cb][p] += wv * xv[p];
          }
        }
      }
    }
    for (int p = 0; p < kPix; ++p) {
      if (p > 0 && t * kPix + p >= q.nvec) break;  // a repeated vector
      const int64_t lanes = std::min<int64_t>(L, q.ow - col[p]);
      for (int cb = 0; cb < cos; ++cb) {
        float* dst = y + ((n * q.cout + co0 + cb) * q.oh + row[p]) * q.ow + col[p];
        for (int64_t l = 0; l < lanes; ++l) dst[l] = act(acc[cb][p][l] + b[cb]);
      }
    }
  }
}

// The convolution of padded planes with packed weights into y (n x cout x oh x ow).
template <int L, typename Act>
void convolve_lanes(const Plan& q, const float* xpad, const float* wpk, const float* bias,
                    float* y, Act act) {
  const int64_t blocks = (q.cout + kCoBlock - 1) / kCoBlock;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < q.n; ++n)
    for (int64_t kb = 0; kb < blocks; ++kb) forward_block<L>(q, xpad, wpk, bias, y, n, kb, act);
}

template <typename Act>
void convolve(const Plan& q, const float* xpad, const float* wpk, const float* bias, float* y,
              Act act) {
#ifdef __AVX512F__
  if (q.lanes == 16) return convolve_lanes<16>(q, xpad, wpk, bias, y, act);
#endif
  convolve_lanes<8>(q, xpad, wpk, bias, y, act);
}

}  // namespace

bool direct_eligible(const Shape& w, const Conv2dParams& p) {
  return w[2] == 3 && w[3] == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
         p.dilation_w == 1 && p.groups == 1 && p.pad_h <= 2 && p.pad_w <= 2;
}

void direct_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  const Plan q = plan(x.size(0), x.size(1), w.size(0), y.size(2), y.size(3), true);
  float* xpad = align64(scratch(0, q.n * q.cin * q.hp * q.wp + 16));
  float* wpk = scratch(1, round_up(q.cout, kCoBlock) * q.cin * 9);
  pad_planes(fptr(x), q.n, q.cin, x.size(2), x.size(3), p.pad_h, p.pad_w, q.hp, q.wp, xpad);
  pack_weights(fptr(w), q.cout, q.cin, false, wpk);
  with_activation(p.activation, [&](auto act) { convolve(q, xpad, wpk, fptr(b), fptr(y), act); });
}

void direct_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  // gx = conv(gy padded by 2 - pad, w with cin and cout swapped and the taps reversed).
  const Plan q = plan(gy.size(0), gy.size(1), gx.size(1), gx.size(2), gx.size(3), true);
  float* gypad = align64(scratch(0, q.n * q.cin * q.hp * q.wp + 16));
  float* wpk = scratch(1, round_up(q.cout, kCoBlock) * q.cin * 9);
  pad_planes(fptr(gy), q.n, q.cin, gy.size(2), gy.size(3), 2 - p.pad_h, 2 - p.pad_w, q.hp, q.wp,
             gypad);
  pack_weights(fptr(w), q.cout, q.cin, true, wpk);
  convolve(q, gypad, wpk, nullptr, fptr(gx), IdentityFn{});
}

namespace {

// The backward-weight tiles over the padded x (channel-major) and the re-strided gy (below).
template <int L>
void weight_tiles(const Plan& q, const float* xpad, const float* gyr, int64_t gpl, int64_t coutr,
                  float* gwp) {
  const int64_t plane = q.hp * q.wp;
  const int64_t blocks = coutr / kGwCoBlock;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t kb = 0; kb < blocks; ++kb) {
    for (int64_t ci = 0; ci < q.cin; ++ci) {
      // Image by image, so that its x plane and gy planes stay in L1 across the three kernel
      // rows; each kernel row's 3 x kGwCoBlock accumulators wait in memory between images.
      VecT<L> acc[3][kGwCoBlock][3] = {};
      for (int64_t in = 0; in < q.n; ++in) {
        const float* g0 = gyr + (kb * q.n + in) * kGwCoBlock * gpl;
        for (int i = 0; i < 3; ++i) {
          const float* xc = xpad + (ci * q.n + in) * plane + i * q.wp;
          VecT<L> a[kGwCoBlock][3];
          for (int cb = 0; cb < kGwCoBlock; ++cb)
            for (int j = 0; j < 3; ++j) a[cb][j] = acc[i][cb][j];
          for (int64_t k = 0; k < gpl; k += L) {
            const VecT<L> x0 = load<L>(xc + k), x1 = load<L>(xc + k + 1), x2 = load<L>(xc + k + 2);
            for (int cb = 0; cb < kGwCoBlock; ++cb) {
              const VecT<L> g = load<L>(g0 + cb * gpl + k);
              a[cb][0] += g * x0;
              a[cb][1] += g * x1;
              a[cb][2] += g * x2;
            }
          }
          for (int cb = 0; cb < kGwCoBlock; ++cb)
            for (int j = 0; j < 3; ++j) acc[i][cb][j] = a[cb][j];
        }
      }
      for (int cb = 0; cb < kGwCoBlock; ++cb) {
        const int64_t co = kb * kGwCoBlock + cb;
        if (co >= q.cout) break;
        for (int i = 0; i < 3; ++i) {
          for (int j = 0; j < 3; ++j) {
            float s = 0.f;
            for (int l = 0; l < L; ++l) s += acc[i][cb][j][l];
            gwp[(co * q.cin + ci) * 9 + i * 3 + j] = s;
          }
        }
      }
    }
  }
}

}  // namespace

void direct_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, const Conv2dParams& p) {
  const int64_t n = x.size(0), cin = x.size(1), cout = gy.size(1);
  const Plan q = plan(n, cin, cout, gy.size(2), gy.size(3), false);
  const int L = q.lanes;
  // gy is copied with the padded input's row stride wp (zeros past ow) into planes of gpl floats,
  // whole vectors: the pixel loop is then one flat loop over the plane, the input read at the
  // same flat position shifted by the tap (i * wp + j), and the zeros cancel the reads that fall
  // in the padding columns (or, for the last vectors, in the next plane or the slack after the
  // last one: up to gpl - oh * wp + 1 <= 2L floats past it, so 3L zeros there).
  const int64_t plane = q.hp * q.wp, gpl = round_up(q.oh * q.wp, 2 * L);
  const int64_t coutr = round_up(cout, kGwCoBlock);
  const int64_t xsize = n * cin * plane;
  float* xpad = scratch(0, xsize + 3 * L);
  // 64-byte aligned, with gpl a multiple of 16 floats: no gy load straddles two cache lines.
  float* gyr = align64(scratch(1, n * coutr * gpl + 16));
  pad_planes(fptr(x), n, cin, x.size(2), x.size(3), p.pad_h, p.pad_w, q.hp, q.wp, xpad, true);
  std::fill_n(xpad + xsize, 3 * L, 0.f);
  // gy as [channel block][image][channel in block][gpl]: a task's gy is one contiguous stream,
  // as its x planes are ([channel][image]).
  const float* gyp = fptr(gy);
#pragma omp parallel for schedule(static) if (n * coutr * gpl > kParallelGrain)
  for (int64_t nc = 0; nc < n * coutr; ++nc) {
    const int64_t in = nc / coutr, co = nc % coutr;
    float* dst = gyr + ((co / kGwCoBlock * n + in) * kGwCoBlock + co % kGwCoBlock) * gpl;
    std::fill_n(dst, gpl, 0.f);
    if (co >= cout) continue;
    const float* src = gyp + (in * cout + co) * q.oh * q.ow;
    for (int64_t r = 0; r < q.oh; ++r) std::copy_n(src + r * q.ow, q.ow, dst + r * q.wp);
  }
#ifdef __AVX512F__
  if (L == 16) return weight_tiles<16>(q, xpad, gyr, gpl, coutr, fptr(gw));
#endif
  weight_tiles<8>(q, xpad, gyr, gpl, coutr, fptr(gw));
}

}  // namespace engine::cpu
