// Per-image properties, hashes, colour histogram and thumbnails for the dataset explorer, and the
// near-duplicate search over the hashes (see image_analysis.h for the definitions).
#include "data/image_analysis.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>

#include "data/transforms.h"
#include "engine/error.h"

namespace data {

namespace {

// Luma per pixel, in float: every property and hash starts from it.
std::vector<float> luma(const Image& img) {
  const size_t n = size_t(img.width) * size_t(img.height);
  std::vector<float> y(n);
  const uint8_t* p = img.pixels.data();
  for (size_t i = 0; i < n; ++i, p += 3) y[i] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
  return y;
}

// Box-filter (area) weights of one axis: output cell o covers source [o*s, (o+1)*s) with
// s = in/out, and each source cell it overlaps counts by the overlapped length / s (OpenCV's
// INTER_AREA). Upscaling degenerates to nearest-neighbour, which the hashes never need.
struct AreaAxis {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<float> w;  // out * ksize
};

AreaAxis area_axis(int in, int out) {
  AreaAxis a;
  const double s = double(in) / out;
  a.ksize = int(std::ceil(s)) + 2;
  a.first.resize(out);
  a.count.resize(out);
  a.w.assign(size_t(out) * a.ksize, 0.f);
  for (int o = 0; o < out; ++o) {
    const double lo = o * s, hi = std::min(double(in), (o + 1) * s);
    const int i0 = int(std::floor(lo));
    int k = 0;
    for (int i = i0; i < in && i < hi; ++i, ++k) {
      const double overlap = std::min(hi, double(i + 1)) - std::max(lo, double(i));
      a.w[size_t(o) * a.ksize + k] = float(overlap / s);
    }
    a.first[o] = i0;
    a.count[o] = k;
  }
  return a;
}

// Area-average resize of an interleaved plane (float luma or 8-bit RGB) with `ch` channels.
// Rows first: each output row is a weighted sum of whole source rows, a contiguous loop the
// compiler vectorises; the column pass then runs on oh rows only.
template <int ch, typename T>
std::vector<float> area_resize(const T* src, int w, int h, int ow, int oh) {
  const AreaAxis ax = area_axis(w, ow), ay = area_axis(h, oh);
  const size_t rowlen = size_t(w) * ch;
  std::vector<float> tmp(rowlen * oh, 0.f), out(size_t(ow) * oh * ch, 0.f);
  for (int o = 0; o < oh; ++o) {
    const float* wk = &ay.w[size_t(o) * ay.ksize];
    float* d = &tmp[o * rowlen];
    for (int k = 0; k < ay.count[o]; ++k) {
      const T* s = src + (ay.first[o] + k) * rowlen;
      const float wt = wk[k];
      for (size_t i = 0; i < rowlen; ++i) d[i] += wt * float(s[i]);
    }
  }
  for (int y = 0; y < oh; ++y) {
    const float* row = &tmp[y * rowlen];
    float* d = &out[size_t(y) * ow * ch];
    for (int o = 0; o < ow; ++o) {
      const float* wk = &ax.w[size_t(o) * ax.ksize];
      for (int k = 0; k < ax.count[o]; ++k) {
        const float* s = row + size_t(ax.first[o] + k) * ch;
        for (int c = 0; c < ch; ++c) d[o * ch + c] += wk[k] * s[c];
      }
    }
  }
  return out;
}

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

ImageProperties image_properties(const Image& img) {
  ImageProperties p;
  p.width = img.width;
  p.height = img.height;
  if (img.empty()) return p;
  const int w = img.width, h = img.height;
  const std::vector<float> y = luma(img);
  const double n = double(y.size());

  double sum = 0;
  std::array<int64_t, 256> hist{};
  for (float v : y) {
    sum += v;
    ++hist[std::min(int(v + 0.5f), 255)];  // v >= 0: truncation rounds
  }
  const double mean = sum / n;
  // Two passes, so a uniform image has exactly zero contrast (one-pass sum-of-squares minus
  // squared mean leaves rounding noise).
  double var = 0;
  for (float v : y) var += (v - mean) * (v - mean);
  p.brightness = float(mean);
  p.contrast = float(std::sqrt(var / n));

  double entropy = 0;
  for (int64_t c : hist)
    if (c > 0) entropy -= (double(c) / n) * std::log2(double(c) / n);
  p.entropy = float(entropy);

  if (w >= 3 && h >= 3) {
    // One pass: the Laplacian's mean is near 0 next to its spread, so E[l^2] - E[l]^2 loses
    // nothing, and a uniform image gives exact zeros (4a - 4a).
    double ls = 0, ls2 = 0;
    for (int r = 1; r < h - 1; ++r) {
      const float* up = &y[size_t(r - 1) * w];
      const float* mid = up + w;
      const float* dn = mid + w;
      for (int c = 1; c < w - 1; ++c) {
        const double l = double(up[c]) + dn[c] + mid[c - 1] + mid[c + 1] - 4.0 * mid[c];
        ls += l;
        ls2 += l * l;
      }
    }
    const double m = double(w - 2) * double(h - 2), lm = ls / m;
    p.blur = float(std::max(0.0, ls2 / m - lm * lm));
  }

  bool gray = true;
  for (size_t i = 0; i < img.pixels.size() && gray; i += 3) {
    const uint8_t r = img.pixels[i], g = img.pixels[i + 1], b = img.pixels[i + 2];
    gray = std::max({r, g, b}) - std::min({r, g, b}) <= 8;
  }
  p.grayscale = gray;
  return p;
}

uint64_t pixel_hash(const Image& img) {
  // MurmurHash3 x64's block mixing, one lane, 8 bytes a step: ~6x faster than byte-wise FNV-1a
  // on a 150x150 image, and every input bit reaches every output bit through fmix64.
  constexpr uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
  auto mix = [&](uint64_t h, uint64_t k) {
    k *= c1;
    k = rotl(k, 31);
    k *= c2;
    h ^= k;
    return rotl(h, 27) * 5 + 0x52dce729;
  };
  uint64_t h = mix(0x9e3779b97f4a7c15ULL,
                   (uint64_t(uint32_t(img.width)) << 32) | uint64_t(uint32_t(img.height)));
  const uint8_t* p = img.pixels.data();
  const size_t n = img.pixels.size(), blocks = n / 8;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k;
    std::memcpy(&k, p + i * 8, 8);
    h = mix(h, k);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + blocks * 8, n - blocks * 8);
  h = mix(h, tail);
  return fmix64(h ^ uint64_t(n));
}

uint64_t dhash64(const Image& img) {
  if (img.empty()) return 0;
  const std::vector<float> y = luma(img);
  const std::vector<float> s = area_resize<1>(y.data(), img.width, img.height, 9, 8);
  uint64_t bits = 0;
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c)
      if (s[r * 9 + c] < s[r * 9 + c + 1]) bits |= uint64_t(1) << (r * 8 + c);
  return bits;
}

uint64_t phash64(const Image& img) {
  if (img.empty()) return 0;
  constexpr int N = 32, K = 8;
  const std::vector<float> y = luma(img);
  const std::vector<float> s = area_resize<1>(y.data(), img.width, img.height, N, N);
  // The first K rows of the DCT-II matrix: C[k][n] = cos(pi/N * (n + 0.5) * k).
  static const std::array<double, K* N> cosines = [] {
    std::array<double, K * N> c{};
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < N; ++n) c[k * N + n] = std::cos(M_PI / N * (n + 0.5) * k);
    return c;
  }();
  // D = C S C^T, only its top-left K x K: rows first (K x N), then columns.
  std::array<double, K * N> t{};
  for (int u = 0; u < K; ++u)
    for (int n = 0; n < N; ++n) {
      const double cu = cosines[u * N + n];
      for (int x = 0; x < N; ++x) t[u * N + x] += cu * s[n * N + x];
    }
  std::array<double, K * K> d{};
  for (int u = 0; u < K; ++u)
    for (int v = 0; v < K; ++v) {
      double acc = 0;
      for (int x = 0; x < N; ++x) acc += t[u * N + x] * cosines[v * N + x];
      d[u * K + v] = acc;
    }
  std::array<double, K * K - 1> ac;
  std::copy(d.begin() + 1, d.end(), ac.begin());
  std::nth_element(ac.begin(), ac.begin() + ac.size() / 2, ac.end());
  const double median = ac[ac.size() / 2];  // 63 values: the middle one exactly
  uint64_t bits = 0;
  for (int i = 0; i < K * K; ++i)
    if (d[i] > median) bits |= uint64_t(1) << i;
  return bits;
}

std::vector<float> color_histogram(const Image& img) {
  std::vector<float> h(64, 0.f);
  if (img.empty()) return h;
  std::array<int64_t, 64> counts{};
  for (size_t i = 0; i < img.pixels.size(); i += 3)
    ++counts[(img.pixels[i] >> 6) * 16 + (img.pixels[i + 1] >> 6) * 4 + (img.pixels[i + 2] >> 6)];
  const double n = double(img.pixels.size() / 3);
  for (int b = 0; b < 64; ++b) h[b] = float(std::sqrt(double(counts[b]) / n));
  return h;
}

Image thumbnail(const Image& img, int side) {
  ENGINE_CHECK(side > 0, "thumbnail: side ", side, " must be positive");
  Image out(side, side);
  std::fill(out.pixels.begin(), out.pixels.end(), uint8_t(128));
  if (img.empty()) return out;
  const int longer = std::max(img.width, img.height);
  auto fit = [&](int v) { return std::max(1, int(std::lround(double(v) * side / longer))); };
  const int tw = fit(img.width), th = fit(img.height);
  Image small;
  if (tw > img.width || th > img.height) {
    small = resize_bilinear(img, tw, th);
  } else if (tw == img.width && th == img.height) {
    small = img;
  } else {
    const std::vector<float> r = area_resize<3>(img.pixels.data(), img.width, img.height, tw, th);
    small = Image(tw, th);
    for (size_t i = 0; i < r.size(); ++i)
      small.pixels[i] = uint8_t(std::min(r[i] + 0.5f, 255.f));  // r >= 0: truncation rounds
  }
  const int x0 = (side - tw) / 2, y0 = (side - th) / 2;
  for (int r = 0; r < th; ++r)
    std::memcpy(out.row(y0 + r) + size_t(x0) * 3, small.row(r), size_t(tw) * 3);
  return out;
}

int hamming64(uint64_t a, uint64_t b) { return std::popcount(a ^ b); }

double percentile(std::vector<double> values, double q) {
  ENGINE_CHECK(!values.empty(), "percentile: empty input");
  ENGINE_CHECK(q >= 0 && q <= 100, "percentile: q = ", q, " outside [0, 100]");
  const double pos = q / 100.0 * double(values.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double a = values[lo];
  const double b = hi == lo ? a : *std::min_element(values.begin() + hi, values.end());
  const double t = pos - double(lo);
  // numpy's _lerp: from the nearer end, so t = 1 gives b exactly.
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

namespace {

// One band of the indexed hash: bits [shift, shift + width), searched within `radius` bits,
// indexed by its low `key_bits` bits (fewer than `width` when the band is wider than the data
// needs: a bucket then also holds band values that differ above key_bits, which the exact band
// comparison filters out).
struct Band {
  int shift = 0, width = 0, key_bits = 0, radius = 0;
  uint64_t value(uint64_t h) const {
    return width == 64 ? h : (h >> shift) & ((uint64_t(1) << width) - 1);
  }
  uint64_t mask() const {
    return width == 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1) << shift;
  }
  size_t key(uint64_t band_value) const {
    return size_t(band_value & ((uint64_t(1) << key_bits) - 1));
  }
};

// The hash split into m (<= max_dist + 1) nearly equal bands, with radii r_t summing to
// max_dist + 1 - m: two hashes within max_dist bits cannot differ in more than r_t bits in every
// band t (that would take sum(r_t + 1) = max_dist + 1 bits), so one band is within its radius.
// The general pigeonhole: with max_dist = 10 and 6 bands, five radius-1 bands and one exact one.
std::vector<Band> make_bands(int m, int key_cap, int max_dist) {
  std::vector<Band> bands(m);
  int shift = 0;
  for (int i = 0; i < m; ++i) {
    bands[i].shift = shift;
    bands[i].width = 64 / m + (i < 64 % m ? 1 : 0);
    bands[i].key_bits = std::min(bands[i].width, key_cap);
    bands[i].radius = (max_dist + 1) / m - 1 + (i < (max_dist + 1) % m ? 1 : 0);
    shift += bands[i].width;
  }
  return bands;
}

double binomial_sum(int n, int r) {  // sum_{j<=r} C(n, j)
  double s = 0, c = 1;
  for (int j = 0; j <= std::min(n, r); ++j) {
    s += c;
    c = c * (n - j) / (j + 1);
  }
  return s;
}

// Calls visit(v') for every v' within r bits of v among the low `width` bits, each once.
template <typename Visit>
void for_each_neighbour(uint64_t v, int width, int r, int from, const Visit& visit) {
  visit(v);
  if (r == 0) return;
  for (int b = from; b < width; ++b)
    for_each_neighbour(v ^ (uint64_t(1) << b), width, r - 1, b + 1, visit);
}

// Relative costs, measured on x86 (100,000 random hashes): a bucket lookup (an offset load, often
// a cache miss, and the neighbour enumeration) and a candidate test (streamed hash, popcount).
constexpr double kLookupCost = 8, kCandidateCost = 1;

std::vector<NearPair> brute_force_pairs(const std::vector<uint64_t>& dh,
                                        const std::vector<uint64_t>& ph, int md, int mp) {
  const int64_t n = int64_t(dh.size());
  std::vector<std::vector<NearPair>> per_thread(omp_get_max_threads());
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    auto& out = per_thread[omp_get_thread_num()];
    for (int64_t j = i + 1; j < n; ++j) {
      const int d = hamming64(dh[i], dh[j]);
      if (d > md) continue;
      const int p = hamming64(ph[i], ph[j]);
      if (p <= mp) out.push_back({i, j, d, p});
    }
  }
  std::vector<NearPair> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  return all;
}

}  // namespace

namespace {

// The number of bands m (0: brute force is cheaper) for an index on one hash with threshold
// max_dist, and its estimated cost.
struct IndexPlan {
  int m = 0;
  double cost = 0;
};

IndexPlan plan_index(int64_t n, int max_dist, int key_cap) {
  IndexPlan best{0, kCandidateCost * double(n) * double(n - 1) / 2};
  for (int m = 1; m <= std::min(64, max_dist + 1); ++m) {
    double cost = 0;
    for (const Band& b : make_bands(m, key_cap, max_dist)) {
      const double lookups = binomial_sum(b.width, b.radius);
      const double strangers = double(n) / std::ldexp(1.0, b.key_bits);
      cost += double(n) * lookups * (kLookupCost + kCandidateCost * strangers);
    }
    if (cost < best.cost) best = {m, cost};
  }
  return best;
}

// Multi-index search on `key` (within max_key) with `other` checked on the candidates; pairs come
// with (key distance, other distance) in dhash_distance, phash_distance order, unsorted.
std::vector<NearPair> indexed_pairs(const std::vector<uint64_t>& key,
                                    const std::vector<uint64_t>& other, int max_key, int max_other,
                                    int m, int key_cap, bool key_is_dhash) {
  const int64_t n = int64_t(key.size());
  const std::vector<Band> bands = make_bands(m, key_cap, max_key);
  // Per band, images bucketed by key, CSR: start offsets, then each bucket's full hashes (and,
  // apart, their ids in ascending order), so scanning a bucket is a tight xor-popcount loop over
  // contiguous memory; the ids are read only for the rare hash within max_key.
  std::vector<std::vector<int64_t>> start(bands.size()), ids(bands.size());
  std::vector<std::vector<uint64_t>> hashes(bands.size());
  for (size_t t = 0; t < bands.size(); ++t) {
    const Band& b = bands[t];
    start[t].assign((size_t(1) << b.key_bits) + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++start[t][b.key(b.value(key[i])) + 1];
    std::partial_sum(start[t].begin(), start[t].end(), start[t].begin());
    ids[t].resize(n);
    hashes[t].resize(n);
    std::vector<int64_t> fill(start[t].begin(), start[t].end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t s = fill[b.key(b.value(key[i]))]++;
      ids[t][s] = i;
      hashes[t][s] = key[i];
    }
  }
  std::vector<std::vector<NearPair>> per_thread(omp_get_max_threads());
#pragma omp parallel for schedule(dynamic, 256)
  for (int64_t i = 0; i < n; ++i) {
    auto& out = per_thread[omp_get_thread_num()];
    const uint64_t ki = key[i];
    for (size_t t = 0; t < bands.size(); ++t) {
      const Band& b = bands[t];
      const uint64_t* h = hashes[t].data();
      for_each_neighbour(b.value(ki), b.width, b.radius, 0, [&](uint64_t v) {
        const size_t k = b.key(v);
        for (int64_t s = start[t][k], end = start[t][k + 1]; s < end; ++s) {
          const uint64_t x = ki ^ h[s];
          if (std::popcount(x) > max_key) continue;
          const int64_t j = ids[t][s];
          if (j <= i || b.value(h[s]) != v) continue;
          // Report the pair from its first band within radius only, so each pair once.
          bool earlier = false;
          for (size_t f = 0; f < t && !earlier; ++f)
            earlier = std::popcount(x & bands[f].mask()) <= bands[f].radius;
          if (earlier) continue;
          const int dk = std::popcount(x), dother = hamming64(other[i], other[j]);
          if (dother > max_other) continue;
          out.push_back(key_is_dhash ? NearPair{i, j, dk, dother} : NearPair{i, j, dother, dk});
        }
      });
    }
  }
  std::vector<NearPair> pairs;
  for (auto& v : per_thread) pairs.insert(pairs.end(), v.begin(), v.end());
  return pairs;
}

}  // namespace

std::vector<NearPair> near_duplicate_pairs(const std::vector<uint64_t>& dhash,
                                           const std::vector<uint64_t>& phash, int max_dhash,
                                           int max_phash) {
  ENGINE_CHECK(dhash.size() == phash.size(), "near_duplicate_pairs: ", dhash.size(),
               " dHashes but ", phash.size(), " pHashes");
  const int64_t n = int64_t(dhash.size());
  if (n < 2 || max_dhash < 0 || max_phash < 0) return {};

  // Bucket index bits: about 4 buckets per image, so a lookup finds ~0.25 strangers at most.
  const int key_cap = std::clamp(int(std::ceil(std::log2(double(n)))) + 2, 1, 24);
  // Either hash may carry the index (a pair must be near in both); the tighter one prunes more.
  // With the explorer's thresholds that is the pHash: a dHash radius of 22 bits of 64 leaves
  // bands too short to prune.
  const IndexPlan on_d = plan_index(n, max_dhash, key_cap);
  const IndexPlan on_p = plan_index(n, max_phash, key_cap);
  std::vector<NearPair> pairs;
  if (on_d.m == 0 && on_p.m == 0) {
    pairs = brute_force_pairs(dhash, phash, max_dhash, max_phash);
  } else if (on_p.m == 0 || (on_d.m != 0 && on_d.cost <= on_p.cost)) {
    pairs = indexed_pairs(dhash, phash, max_dhash, max_phash, on_d.m, key_cap, true);
  } else {
    pairs = indexed_pairs(phash, dhash, max_phash, max_dhash, on_p.m, key_cap, false);
  }
  std::sort(pairs.begin(), pairs.end(), [](const NearPair& x, const NearPair& y) {
    return x.a != y.a ? x.a < y.a : x.b < y.b;
  });
  return pairs;
}

std::vector<std::vector<int64_t>> connected_groups(
    int64_t n, const std::vector<std::pair<int64_t, int64_t>>& edges) {
  ENGINE_CHECK(n >= 0, "connected_groups: negative node count ", n);
  std::vector<int64_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int64_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];  // path halving
    return x;
  };
  for (const auto& [a, b] : edges) {
    ENGINE_CHECK(a >= 0 && a < n && b >= 0 && b < n, "connected_groups: edge (", a, ", ", b,
                 ") outside 0..", n - 1);
    const int64_t ra = find(a), rb = find(b);
    // The smaller index becomes the root, so a root is its group's first member.
    if (ra != rb) parent[std::max(ra, rb)] = std::min(ra, rb);
  }
  std::vector<int64_t> slot(n, -1);
  std::vector<std::vector<int64_t>> groups;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = find(i);
    if (slot[r] < 0) {
      slot[r] = int64_t(groups.size());
      groups.emplace_back();
    }
    groups[slot[r]].push_back(i);
  }
  // Built in ascending order of i, so each group is sorted and groups come by first member.
  std::erase_if(groups, [](const std::vector<int64_t>& g) { return g.size() < 2; });
  return groups;
}

}  // namespace data
