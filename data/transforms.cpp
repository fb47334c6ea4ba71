// Image transforms; see transforms.h. resize_bilinear follows Pillow's Resample.c
// (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc) step by step:
// coefficients in double, normalised to sum 1, converted to 22-bit fixed point, accumulated in
// 32-bit integers with a rounding bias, clipped to uint8 after each pass.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE4_1__)
#include <immintrin.h>
#endif

namespace data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

// One output coordinate's taps: source index of the first tap, tap count, and the taps.
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;  // out_size x ksize
};

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

Coeffs precompute_coeffs(int in_size, int out_size) {
  const double support_base = 1.0;  // bilinear
  double scale = double(in_size) / out_size;
  double filterscale = std::max(scale, 1.0);
  double support = support_base * filterscale;
  Coeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = std::max(int(center - support + 0.5), 0);
    int xmax = std::min(int(center + support + 0.5), in_size) - xmin;
    for (int x = 0; x < xmax; ++x) {
      double w = bilinear_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
      double v = k[x] * (1 << kPrecisionBits);
      c.k[size_t(xx) * c.ksize + x] = int32_t(v < 0 ? -0.5 + v : 0.5 + v);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return uint8_t(v >> kPrecisionBits);
}

// Rows [y_first, y_first + dst.height) of src, resampled horizontally into dst.
void horizontal_pass_scalar(const Image& src, int y_first, const Coeffs& c, Image& dst) {
  constexpr int32_t half = 1 << (kPrecisionBits - 1);
  for (int y = 0; y < dst.height; ++y) {
    const uint8_t* s = src.row(y + y_first);
    uint8_t* d = dst.row(y);
    for (int xx = 0; xx < dst.width; ++xx) {
      const int32_t* k = &c.k[size_t(xx) * c.ksize];
      const uint8_t* p = s + size_t(c.first[xx]) * 3;
      int32_t s0 = half, s1 = half, s2 = half;
      for (int x = 0; x < c.count[xx]; ++x) {
        s0 += p[3 * x] * k[x];
        s1 += p[3 * x + 1] * k[x];
        s2 += p[3 * x + 2] * k[x];
      }
      d[3 * xx] = clip8(s0), d[3 * xx + 1] = clip8(s1), d[3 * xx + 2] = clip8(s2);
    }
  }
}

#if defined(__SSE4_1__)
// The same sums with one pixel's three channels in one SSE register (the fourth lane is
// discarded), every output using exactly K taps: windows shorter than K are padded with zero
// taps (shifted left at the right edge), which adds nothing, so the result is bit-identical.
// Integer arithmetic throughout; _mm_packs/_mm_packus saturate exactly as clip8 clips.
template <int K>
void horizontal_pass_sse(const Image& src, int y_first, const std::vector<int>& first,
                         const std::vector<int32_t>& taps, Image& dst) {
  const uint8_t* end = src.pixels.data() + src.pixels.size();
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  const int ksize = K > 0 ? K : int(taps.size() / first.size());
  for (int y = 0; y < dst.height; ++y) {
    const uint8_t* s = src.row(y + y_first);
    uint8_t* d = dst.row(y);
    for (int xx = 0; xx < dst.width; ++xx) {
      const uint8_t* p = s + size_t(first[xx]) * 3;
      const int32_t* k = &taps[size_t(xx) * ksize];
      __m128i acc = half;
      for (int t = 0; t < ksize; ++t) {
        const uint8_t* q = p + 3 * t;
        int32_t v;
        if (q + 4 <= end) {
          std::memcpy(&v, q, 4);  // the 4th byte belongs to the next pixel: ignored
        } else {
          v = int32_t(q[0]) | int32_t(q[1]) << 8 | int32_t(q[2]) << 16;
        }
        const __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(v));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[t])));
      }
      const __m128i v16 = _mm_packs_epi32(_mm_srai_epi32(acc, kPrecisionBits), acc);
      const int32_t out = _mm_cvtsi128_si32(_mm_packus_epi16(v16, v16));
      d[3 * xx] = uint8_t(out), d[3 * xx + 1] = uint8_t(out >> 8), d[3 * xx + 2] = uint8_t(out >> 16);
    }
  }
}
#endif

void horizontal_pass(const Image& src, int y_first, const Coeffs& c, Image& dst) {
#if defined(__SSE4_1__)
  if (c.ksize <= src.width) {
    // Pad every window to ksize taps inside the row.
    std::vector<int> first(c.first.size());
    std::vector<int32_t> taps(c.k.size(), 0);
    for (size_t xx = 0; xx < first.size(); ++xx) {
      const int f = std::min(c.first[xx], src.width - c.ksize);
      first[xx] = f;
      for (int x = 0; x < c.count[xx]; ++x) {
        taps[xx * size_t(c.ksize) + size_t(c.first[xx] - f + x)] = c.k[xx * size_t(c.ksize) + x];
      }
    }
    switch (c.ksize) {
      case 3: return horizontal_pass_sse<3>(src, y_first, first, taps, dst);
      case 5: return horizontal_pass_sse<5>(src, y_first, first, taps, dst);
      case 7: return horizontal_pass_sse<7>(src, y_first, first, taps, dst);
      case 9: return horizontal_pass_sse<9>(src, y_first, first, taps, dst);
      default: return horizontal_pass_sse<0>(src, y_first, first, taps, dst);
    }
  }
#endif
  horizontal_pass_scalar(src, y_first, c, dst);
}

}  // namespace

Image resize_bilinear(const Image& src, int out_w, int out_h) {
  ENGINE_CHECK(out_w > 0 && out_h > 0, "resize: output size ", out_w, "x", out_h,
               " must be positive");
  ENGINE_CHECK(!src.empty(), "resize: empty input image");
  if (out_w == src.width && out_h == src.height) return src;
  const bool need_h = out_w != src.width, need_v = out_h != src.height;
  Coeffs ch = precompute_coeffs(src.width, out_w);
  Coeffs cv = precompute_coeffs(src.height, out_h);
  // Rows of the source the vertical pass reads; the horizontal pass produces only those.
  int y_first = cv.first[0];
  int y_last = cv.first[out_h - 1] + cv.count[out_h - 1];

  Image tmp;
  const Image* in = &src;
  int y_offset = 0;
  if (need_h) {
    tmp = Image(out_w, y_last - y_first);
    horizontal_pass(src, y_first, ch, tmp);
    in = &tmp;
    y_offset = y_first;
  }
  if (!need_v) return tmp;

  Image out(in->width, out_h);
  const int rowlen = in->width * 3;
  std::vector<int32_t> acc(rowlen);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &cv.k[size_t(yy) * cv.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    // Row-major accumulation: each tap adds a whole source row (same sums as Pillow's
    // column-wise loop, in the same order per element).
    for (int y = 0; y < cv.count[yy]; ++y) {
      const uint8_t* s = in->row(cv.first[yy] - y_offset + y);
      const int32_t w = k[y];
      for (int i = 0; i < rowlen; ++i) acc[i] += s[i] * w;
    }
    uint8_t* d = out.row(yy);
    for (int i = 0; i < rowlen; ++i) d[i] = clip8(acc[i]);
  }
  return out;
}

Image resize_shorter_side(const Image& src, int size) {
  ENGINE_CHECK(size > 0, "resize: shorter side ", size, " must be positive");
  ENGINE_CHECK(!src.empty(), "resize: empty input image");
  const bool portrait = src.width <= src.height;
  const int64_t shorter = portrait ? src.width : src.height;
  const int64_t longer = portrait ? src.height : src.width;
  // Python's int(size * long / short): an exact integer product, one correctly rounded division,
  // truncation. Equal to the floor division (the quotient is never within 2^-53 of an integer).
  const int64_t new_long = int64_t(double(size * longer) / double(shorter));
  // A sliver (1000:1) would otherwise allocate gigabytes; the cap is the largest image the
  // decoder accepts by default.
  ENGINE_CHECK(new_long * size <= DecodeLimits{}.max_pixels, "resize: ", src.width, "x", src.height,
               " with shorter side ", size, " would be ", new_long, " pixels long, more than ",
               DecodeLimits{}.max_pixels, " pixels in all");
  return portrait ? resize_bilinear(src, size, int(new_long))
                  : resize_bilinear(src, int(new_long), size);
}

Image crop(const Image& src, int x, int y, int w, int h) {
  ENGINE_CHECK(w > 0 && h > 0, "crop: size ", w, "x", h, " must be positive");
  Image out(w, h);  // zero-filled: the padding
  int x0 = std::max(x, 0), x1 = std::min(x + w, src.width);
  int y0 = std::max(y, 0), y1 = std::min(y + h, src.height);
  for (int yy = y0; yy < y1 && x0 < x1; ++yy) {
    std::memcpy(out.row(yy - y) + size_t(x0 - x) * 3, src.row(yy) + size_t(x0) * 3,
                size_t(x1 - x0) * 3);
  }
  return out;
}

Image center_crop(const Image& src, int w, int h) {
  // torchvision: a crop larger than the image first pads it, (excess // 2) before and the rest
  // after; then top = int(round((H - h) / 2.0)) with round-half-even.
  int pad_left = std::max(w - src.width, 0) / 2, pad_top = std::max(h - src.height, 0) / 2;
  int pw = std::max(w, src.width), ph = std::max(h, src.height);
  int top = int(std::nearbyint((ph - h) / 2.0)) - pad_top;
  int left = int(std::nearbyint((pw - w) / 2.0)) - pad_left;
  return crop(src, left, top, w, h);
}

void hflip(Image& img) {
  for (int y = 0; y < img.height; ++y) {
    uint8_t* r = img.row(y);
    for (int a = 0, b = img.width - 1; a < b; ++a, --b) {
      std::swap_ranges(r + 3 * a, r + 3 * a + 3, r + 3 * b);
    }
  }
}

int SampleRandom::below(int n) { return std::min(int(uniform() * float(n)), n - 1); }

CropBox random_resized_crop_box(int width, int height, SampleRandom& rng,
                                std::array<float, 2> scale, std::array<float, 2> ratio) {
  const double area = double(width) * height;
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * rng.uniform(scale[0], scale[1]);
    double aspect = std::exp(log_lo + (log_hi - log_lo) * rng.uniform());
    int w = int(std::nearbyint(std::sqrt(target * aspect)));
    int h = int(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      int y = rng.below(height - h + 1);
      int x = rng.below(width - w + 1);
      return {x, y, w, h};
    }
  }
  // Fallback: the largest central crop within the ratio range.
  double in_ratio = double(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio[0]) {
    h = int(std::nearbyint(w / double(ratio[0])));
  } else if (in_ratio > ratio[1]) {
    w = int(std::nearbyint(h * double(ratio[1])));
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

void to_chw_float(const Image& img, float* out, const std::array<float, 3>& mean,
                  const std::array<float, 3>& std) {
  // Exactly ToTensor's x / 255 then Normalize's (x - m) / s, in float; written as plain
  // arithmetic (not a lookup table) so the compiler vectorises it.
  const size_t hw = size_t(img.width) * img.height;
  const uint8_t* p = img.pixels.data();
  for (int c = 0; c < 3; ++c) {
    float* o = out + size_t(c) * hw;
    const float m = mean[c], s = std[c];
    if (m == 0.f && s == 1.f) {
      for (size_t i = 0; i < hw; ++i) o[i] = float(p[3 * i + c]) / 255.f;
    } else {
      for (size_t i = 0; i < hw; ++i) o[i] = (float(p[3 * i + c]) / 255.f - m) / s;
    }
  }
}

Transform::Transform(TransformOptions o) : opt_(o) {
  ENGINE_CHECK(opt_.image_size > 0 && opt_.image_size <= 4096, "transform: image size ",
               opt_.image_size, " must be in 1..4096");
  ENGINE_CHECK(opt_.crop_scale_min > 0 && opt_.crop_scale_min <= 1,
               "transform: crop scale minimum ", opt_.crop_scale_min, " must be in (0, 1]");
  ENGINE_CHECK(opt_.resize_size == 0 || opt_.resize_size >= opt_.image_size,
               "transform: resize size ", opt_.resize_size,
               " must be 0 (plain resize) or at least the image size ", opt_.image_size,
               " (the centre crop taken after the resize)");
  for (int c = 0; c < 3; ++c) {
    ENGINE_CHECK(opt_.std[c] > 0 && std::isfinite(opt_.std[c]) && std::isfinite(opt_.mean[c]),
                 "transform: normalisation std must be positive and mean/std finite");
  }
}

Image Transform::base(Image decoded) const {
  const int s = opt_.image_size;
  if (opt_.augment) return decoded;
  if (opt_.resize_size == 0) return resize_bilinear(decoded, s, s);
  return center_crop(resize_shorter_side(decoded, opt_.resize_size), s, s);
}

size_t Transform::base_bytes(int w, int h) const {
  if (opt_.augment) return size_t(w) * h * 3;
  return size_t(opt_.image_size) * opt_.image_size * 3;
}

void Transform::finish(const Image& base, SampleRandom& rng, float* out) const {
  const int s = opt_.image_size;
  if (!opt_.augment) {
    to_chw_float(base, out, opt_.mean, opt_.std);
    return;
  }
  CropBox b = random_resized_crop_box(base.width, base.height, rng, {opt_.crop_scale_min, 1.f});
  Image img = resize_bilinear(crop(base, b.x, b.y, b.w, b.h), s, s);
  if (rng.uniform() < 0.5f) hflip(img);
  to_chw_float(img, out, opt_.mean, opt_.std);
}

}  // namespace data
