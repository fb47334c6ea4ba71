// The explorer's per-image measurements and duplicate search (data/image_analysis.h): properties
// against hand-computed values on crafted images; hashes on planted duplicates among synthetic
// scenes (JPEG re-encodes, rescales, brightness shifts, exact copies), which also calibrate
// kNearDHashMax/kNearPHashMax; outliers found by percentile; the indexed near-duplicate search
// against a brute-force scan; union-find groups and numpy's percentile on hand cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "data/image.h"
#include "data/image_analysis.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "engine/error.h"
#include "tests/testing.h"

namespace {
using data::Image;
using engine::testing::expect_error;

Image filled(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  Image img(w, h);
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = r;
    img.pixels[i + 1] = g;
    img.pixels[i + 2] = b;
  }
  return img;
}

Image jpeg_roundtrip(const Image& img, int quality) {
  const std::vector<uint8_t> bytes = data::encode_jpeg(img, quality);
  return data::decode_image(bytes.data(), bytes.size());
}

Image brightened(const Image& src, int delta) {
  Image out = src;
  for (uint8_t& v : out.pixels) v = uint8_t(std::min(255, v + delta));
  return out;
}

// k x k box blur, edges clamped.
Image box_blur(const Image& src, int k) {
  Image out(src.width, src.height);
  const int r = k / 2;
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = -r; dy <= r; ++dy)
          for (int dx = -r; dx <= r; ++dx) {
            const int yy = std::clamp(y + dy, 0, src.height - 1);
            const int xx = std::clamp(x + dx, 0, src.width - 1);
            sum += src.row(yy)[xx * 3 + c];
          }
        out.row(y)[x * 3 + c] = uint8_t((sum + k * k / 2) / (k * k));
      }
  return out;
}

// ---- properties on crafted images ----

TEST(ImageAnalysis, PropertiesOfUniformGrey) {
  const data::ImageProperties p = data::image_properties(filled(20, 10, 128, 128, 128));
  EXPECT_EQ(p.width, 20);
  EXPECT_EQ(p.height, 10);
  EXPECT_NEAR(p.brightness, 128.0, 1e-3);
  EXPECT_EQ(p.contrast, 0.f);
  EXPECT_EQ(p.blur, 0.f);
  EXPECT_EQ(p.entropy, 0.f);
  EXPECT_TRUE(p.grayscale);
}

TEST(ImageAnalysis, PropertiesOfBlackAndTinyImages) {
  const data::ImageProperties p = data::image_properties(filled(7, 5, 0, 0, 0));
  EXPECT_EQ(p.brightness, 0.f);
  EXPECT_EQ(p.contrast, 0.f);
  EXPECT_TRUE(p.grayscale);
  // Luma weights: pure red, green and blue.
  EXPECT_NEAR(data::image_properties(filled(2, 2, 255, 0, 0)).brightness, 0.299 * 255, 1e-3);
  EXPECT_NEAR(data::image_properties(filled(2, 2, 0, 255, 0)).brightness, 0.587 * 255, 1e-3);
  EXPECT_NEAR(data::image_properties(filled(2, 2, 0, 0, 255)).brightness, 0.114 * 255, 1e-3);
  // No interior pixel: blur is 0 by definition.
  Image strip = filled(10, 2, 0, 0, 0);
  strip.row(0)[3] = 255;
  EXPECT_EQ(data::image_properties(strip).blur, 0.f);
  EXPECT_EQ(data::image_properties(Image()).width, 0);
}

TEST(ImageAnalysis, PropertiesOfCheckerboard) {
  // 8x8 one-pixel checkerboard of 0 and 255: luma mean 127.5, std 127.5, two equal histogram
  // bins (1 bit); every interior Laplacian is +-4*255, half each, so its variance is 1020^2.
  Image img(8, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) std::fill_n(img.row(y) + x * 3, 3, uint8_t((x + y) % 2 ? 255 : 0));
  const data::ImageProperties p = data::image_properties(img);
  EXPECT_NEAR(p.brightness, 127.5, 1e-3);
  EXPECT_NEAR(p.contrast, 127.5, 1e-3);
  EXPECT_NEAR(p.entropy, 1.0, 1e-6);
  EXPECT_NEAR(p.blur, 1020.0 * 1020.0, 1020.0 * 1020.0 * 1e-5);
  EXPECT_TRUE(p.grayscale);
}

TEST(ImageAnalysis, PropertiesHandComputedRamp) {
  // Luma 0, 10, 20 in a 3x3 grey image by column: the one interior Laplacian is 0 (linear ramp)
  // so blur 0; histogram three equal bins: log2(3) bits; std sqrt(200/3).
  Image img(3, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x) std::fill_n(img.row(y) + x * 3, 3, uint8_t(10 * x));
  const data::ImageProperties p = data::image_properties(img);
  EXPECT_NEAR(p.brightness, 10.0, 1e-4);
  EXPECT_NEAR(p.contrast, std::sqrt(200.0 / 3), 1e-4);
  EXPECT_NEAR(p.entropy, std::log2(3.0), 1e-6);
  EXPECT_NEAR(p.blur, 0.0, 1e-6);
}

TEST(ImageAnalysis, GrayscaleAllowsASpreadOfEight) {
  EXPECT_TRUE(data::image_properties(filled(4, 4, 100, 108, 100)).grayscale);
  Image img = filled(4, 4, 100, 108, 100);
  img.row(3)[3 * 3 + 2] = 109;  // one pixel with spread 9
  EXPECT_FALSE(data::image_properties(img).grayscale);
}

// ---- hashes, histogram, thumbnails ----

TEST(ImageAnalysis, PixelHashSeesEveryByteAndTheShape) {
  const Image a = data::draw_scene(1, 7, 40);
  Image b = a;
  EXPECT_EQ(data::pixel_hash(a), data::pixel_hash(b));
  b.pixels.back() ^= 1;
  EXPECT_NE(data::pixel_hash(a), data::pixel_hash(b));
  b = a;
  b.pixels[0] ^= 0x80;
  EXPECT_NE(data::pixel_hash(a), data::pixel_hash(b));
  // Same bytes, transposed shape.
  EXPECT_NE(data::pixel_hash(filled(6, 4, 1, 2, 3)), data::pixel_hash(filled(4, 6, 1, 2, 3)));
}

TEST(ImageAnalysis, DHashBitsFollowTheLeftRightOrder) {
  // Luma increasing to the right everywhere: every bit set; decreasing: none.
  Image img(90, 40);
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 90; ++x) std::fill_n(img.row(y) + x * 3, 3, uint8_t(x * 2));
  EXPECT_EQ(data::dhash64(img), ~uint64_t(0));
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 90; ++x) std::fill_n(img.row(y) + x * 3, 3, uint8_t(200 - x * 2));
  EXPECT_EQ(data::dhash64(img), 0u);
}

TEST(ImageAnalysis, HashesAreFarForDifferentImagesAndUnmovedByBrightness) {
  const Image a = data::draw_scene(0, 11), b = data::draw_scene(3, 12);
  EXPECT_GT(data::hamming64(data::dhash64(a), data::dhash64(b)), 16);
  EXPECT_GT(data::hamming64(data::phash64(a), data::phash64(b)), 16);
  // A horizontal mirror is a different picture to both hashes.
  Image m(a.width, a.height);
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x)
      std::copy_n(a.row(y) + (a.width - 1 - x) * 3, 3, m.row(y) + x * 3);
  EXPECT_GT(data::hamming64(data::phash64(a), data::phash64(m)), 12);
  EXPECT_GT(data::hamming64(data::dhash64(a), data::dhash64(m)), 12);
  EXPECT_EQ(data::hamming64(0, ~uint64_t(0)), 64);
  EXPECT_EQ(data::hamming64(0b1011, 0b0110), 3);
}

TEST(ImageAnalysis, ColorHistogramIsAUnitHellingerVector) {
  Image img = filled(10, 10, 255, 0, 0);
  for (int x = 0; x < 10; ++x) std::fill_n(img.row(0) + x * 3, 3, uint8_t(70));  // 10%: bin 21
  const std::vector<float> h = data::color_histogram(img);
  ASSERT_EQ(h.size(), 64u);
  EXPECT_NEAR(h[3 * 16], std::sqrt(0.9), 1e-6);
  EXPECT_NEAR(h[1 * 16 + 1 * 4 + 1], std::sqrt(0.1), 1e-6);
  double sq = 0;
  for (float v : h) sq += double(v) * v;
  EXPECT_NEAR(sq, 1.0, 1e-6);
  EXPECT_EQ(data::color_histogram(Image()), std::vector<float>(64, 0.f));
}

TEST(ImageAnalysis, ThumbnailKeepsAspectOnGrey) {
  // 100x50 red into 48x48: a 48x24 red band centred vertically (rows 12..35), grey above/below.
  const Image t = data::thumbnail(filled(100, 50, 200, 0, 0), 48);
  ASSERT_EQ(t.width, 48);
  ASSERT_EQ(t.height, 48);
  for (int y : {0, 11, 36, 47}) EXPECT_EQ(t.row(y)[20 * 3], 128) << "row " << y;
  for (int y : {12, 24, 35}) {
    EXPECT_EQ(t.row(y)[0], 200) << "row " << y;
    EXPECT_EQ(t.row(y)[47 * 3 + 1], 0) << "row " << y;
  }
  // Area average: a 2x2 checker of 0/200 shrunk by 2 is uniform 100.
  Image c(4, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) std::fill_n(c.row(y) + x * 3, 3, uint8_t((x + y) % 2 ? 200 : 0));
  const Image tc = data::thumbnail(c, 2);
  for (uint8_t v : tc.pixels) EXPECT_EQ(v, 100);
  // Upscaling a small image: 10x20 into 40 becomes 20x40, centred horizontally.
  const Image up = data::thumbnail(filled(10, 20, 0, 50, 0), 40);
  EXPECT_EQ(up.row(20)[9 * 3 + 1], 128);
  EXPECT_EQ(up.row(20)[10 * 3 + 1], 50);
  EXPECT_EQ(up.row(20)[29 * 3 + 1], 50);
  EXPECT_EQ(up.row(20)[30 * 3 + 1], 128);
  expect_error([] { data::thumbnail(filled(2, 2, 0, 0, 0), 0); }, {"thumbnail", "side"});
}

// ---- planted duplicates among synthetic scenes ----

struct Hashes {
  uint64_t exact, d, p;
};
Hashes hashes(const Image& img) {
  return {data::pixel_hash(img), data::dhash64(img), data::phash64(img)};
}

// 6 classes x 70 scenes, 150x150, stored as the dataset generator stores them (JPEG quality 90).
const std::vector<Image>& scenes() {
  static const std::vector<Image> s = [] {
    std::vector<Image> v;
    for (int k = 0; k < 70; ++k)
      for (int c = 0; c < 6; ++c)
        v.push_back(jpeg_roundtrip(data::draw_scene(c, 1000 + uint64_t(k), 150), 90));
    return v;
  }();
  return s;
}

TEST(ImageAnalysis, PlantedNearDuplicatesFoundAndUnrelatedScenesApart) {
  const std::vector<Image>& orig = scenes();
  const int64_t n0 = int64_t(orig.size());
  std::vector<uint64_t> dh, ph, ex;
  for (const Image& img : orig) {
    const Hashes h = hashes(img);
    dh.push_back(h.d);
    ph.push_back(h.p);
    ex.push_back(h.exact);
  }
  // Every third original gets the four planted variants.
  const char* kinds[4] = {"jpeg60", "down-up 75", "+15", "copy"};
  std::vector<std::pair<int64_t, int64_t>> planted;  // (original, variant index)
  std::vector<int> kind_of;
  for (int64_t i = 0; i < n0; i += 3) {
    const Image& o = orig[i];
    const Image variants[4] = {jpeg_roundtrip(o, 60),
                               data::resize_bilinear(data::resize_bilinear(o, 75, 75), 150, 150),
                               brightened(o, 15), o};
    for (int k = 0; k < 4; ++k) {
      const Hashes h = hashes(variants[k]);
      planted.push_back({i, int64_t(dh.size())});
      kind_of.push_back(k);
      dh.push_back(h.d);
      ph.push_back(h.p);
      ex.push_back(h.exact);
    }
  }

  // The distributions the thresholds were chosen from.
  int worst_d[4] = {0, 0, 0, 0}, worst_p[4] = {0, 0, 0, 0};
  for (size_t t = 0; t < planted.size(); ++t) {
    const auto [a, b] = planted[t];
    worst_d[kind_of[t]] = std::max(worst_d[kind_of[t]], data::hamming64(dh[a], dh[b]));
    worst_p[kind_of[t]] = std::max(worst_p[kind_of[t]], data::hamming64(ph[a], ph[b]));
  }
  std::vector<int> hist_d(65), hist_p(65);
  int64_t unrelated = 0, unrelated_paired = 0;
  for (int64_t i = 0; i < n0; ++i)
    for (int64_t j = i + 1; j < n0; ++j) {
      const int d = data::hamming64(dh[i], dh[j]), p = data::hamming64(ph[i], ph[j]);
      ++hist_d[d];
      ++hist_p[p];
      ++unrelated;
      unrelated_paired += d <= data::kNearDHashMax && p <= data::kNearPHashMax;
    }
  std::printf("planted max distances (dHash / pHash):");
  for (int k = 0; k < 4; ++k) std::printf("  %s %d/%d", kinds[k], worst_d[k], worst_p[k]);
  auto print_low = [](const char* name, const std::vector<int>& h, int offset) {
    std::printf("\nunrelated %s, lowest bins:", name);
    int shown = 0;
    for (int v = 0; v < 65 && shown < 8; ++v)
      if (h[v]) std::printf(" %d:%d", v - offset, h[v]), ++shown;
  };
  print_low("dHash", hist_d, 0);
  print_low("pHash", hist_p, 0);
  std::printf("\nunrelated pairs paired: %lld of %lld\n", (long long)unrelated_paired,
              (long long)unrelated);

  const std::vector<data::NearPair> pairs =
      data::near_duplicate_pairs(dh, ph, data::kNearDHashMax, data::kNearPHashMax);
  std::set<std::pair<int64_t, int64_t>> found;
  for (const data::NearPair& p : pairs) found.insert({p.a, p.b});
  for (size_t t = 0; t < planted.size(); ++t)
    EXPECT_TRUE(found.count(planted[t])) << kinds[kind_of[t]] << " of scene " << planted[t].first;
  for (size_t t = 0; t < planted.size(); ++t)
    if (kind_of[t] == 3) {
      EXPECT_EQ(ex[planted[t].first], ex[planted[t].second]);
    }
  // Margin: every planted kind stays at least 2 bits inside both thresholds.
  for (int k = 0; k < 4; ++k) {
    EXPECT_LE(worst_d[k], data::kNearDHashMax - 2) << kinds[k];
    EXPECT_LE(worst_p[k], data::kNearPHashMax - 2) << kinds[k];
  }
  int64_t paired_in_search = 0;
  for (const data::NearPair& p : pairs) paired_in_search += p.b < n0;
  EXPECT_EQ(paired_in_search, unrelated_paired);
  EXPECT_LT(double(unrelated_paired), 0.001 * double(unrelated));
  std::set<uint64_t> distinct(ex.begin(), ex.begin() + n0);
  EXPECT_EQ(int64_t(distinct.size()), n0) << "pixel_hash collision among distinct scenes";
}

TEST(ImageAnalysis, OutliersFallOutsideThePercentileBand) {
  std::vector<data::ImageProperties> props;
  for (const Image& img : scenes()) props.push_back(data::image_properties(img));
  Image blurred = scenes()[5];
  for (int k = 0; k < 3; ++k) blurred = box_blur(blurred, 7);
  const data::ImageProperties grey = data::image_properties(filled(150, 150, 128, 128, 128));
  const data::ImageProperties black = data::image_properties(filled(150, 150, 0, 0, 0));
  const data::ImageProperties blur = data::image_properties(blurred);
  props.push_back(grey);
  props.push_back(black);
  props.push_back(blur);
  auto low = [&](float data::ImageProperties::*field) {
    std::vector<double> v;
    for (const auto& p : props) v.push_back(p.*field);
    return data::percentile(v, 0.5);
  };
  EXPECT_LT(grey.entropy, low(&data::ImageProperties::entropy));
  EXPECT_LT(grey.blur, low(&data::ImageProperties::blur));
  EXPECT_LT(black.brightness, low(&data::ImageProperties::brightness));
  EXPECT_LT(blur.blur, low(&data::ImageProperties::blur));
}

// ---- the indexed search against brute force ----

std::vector<data::NearPair> brute_force(const std::vector<uint64_t>& dh,
                                        const std::vector<uint64_t>& ph, int md, int mp) {
  std::vector<data::NearPair> out;
  for (size_t i = 0; i < dh.size(); ++i)
    for (size_t j = i + 1; j < dh.size(); ++j) {
      const int d = data::hamming64(dh[i], dh[j]), p = data::hamming64(ph[i], ph[j]);
      if (d <= md && p <= mp) out.push_back({int64_t(i), int64_t(j), d, p});
    }
  return out;
}

// n random hash pairs, with clusters: a quarter of them are copies of an earlier one with 0..14
// random bits flipped in each hash.
void random_hashes(size_t n, uint64_t seed, std::vector<uint64_t>& dh, std::vector<uint64_t>& ph) {
  std::mt19937_64 rng(seed);
  dh.clear();
  ph.clear();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && rng() % 4 == 0) {
      const size_t src = rng() % i;
      uint64_t d = dh[src], p = ph[src];
      const int flips = int(rng() % 15);
      for (int f = 0; f < flips; ++f) {
        d ^= uint64_t(1) << (rng() % 64);
        p ^= uint64_t(1) << (rng() % 64);
      }
      dh.push_back(d);
      ph.push_back(p);
    } else {
      dh.push_back(rng());
      ph.push_back(rng());
    }
  }
}

TEST(ImageAnalysis, NearDuplicatePairsEqualBruteForce) {
  std::vector<uint64_t> dh, ph;
  random_hashes(4000, 42, dh, ph);
  const std::pair<int, int> thresholds[] = {{0, 0},  {0, 64},  {1, 3},   {3, 5},   {5, 64},
                                            {8, 12}, {10, 12}, {12, 16}, {20, 20}, {64, 3}};
  for (const auto& [md, mp] : thresholds) {
    const std::vector<data::NearPair> got = data::near_duplicate_pairs(dh, ph, md, mp);
    const std::vector<data::NearPair> want = brute_force(dh, ph, md, mp);
    ASSERT_EQ(got.size(), want.size()) << "thresholds " << md << "/" << mp;
    for (size_t k = 0; k < got.size(); ++k) {
      ASSERT_EQ(got[k].a, want[k].a) << k;
      ASSERT_EQ(got[k].b, want[k].b) << k;
      ASSERT_EQ(got[k].dhash_distance, want[k].dhash_distance) << k;
      ASSERT_EQ(got[k].phash_distance, want[k].phash_distance) << k;
    }
  }
  EXPECT_TRUE(data::near_duplicate_pairs({}, {}, 8, 8).empty());
  EXPECT_TRUE(data::near_duplicate_pairs({5}, {5}, 8, 8).empty());
  EXPECT_TRUE(data::near_duplicate_pairs({5, 5}, {5, 5}, -1, 8).empty());
  expect_error(
      [] {
        data::near_duplicate_pairs({1, 2}, {1}, 8, 8);
      },
      {"near_duplicate_pairs", "2", "1"});
}

TEST(ImageAnalysis, NearDuplicatePairsScaleTo100kImages) {
  std::vector<uint64_t> dh, ph;
  random_hashes(100000, 7, dh, ph);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<data::NearPair> pairs =
      data::near_duplicate_pairs(dh, ph, data::kNearDHashMax, data::kNearPHashMax);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("near_duplicate_pairs on 100000 hashes: %.1f ms, %zu pairs\n", ms, pairs.size());
  // Sorted, unique, and each within both thresholds.
  for (size_t k = 0; k < pairs.size(); ++k) {
    ASSERT_LT(pairs[k].a, pairs[k].b);
    ASSERT_LE(pairs[k].dhash_distance, data::kNearDHashMax);
    ASSERT_LE(pairs[k].phash_distance, data::kNearPHashMax);
    if (k) {
      ASSERT_TRUE(std::make_pair(pairs[k - 1].a, pairs[k - 1].b) <
                  std::make_pair(pairs[k].a, pairs[k].b));
    }
  }
  EXPECT_GT(pairs.size(), 1000u);  // the planted clusters
  // Complete for the first rows: at this n the index has bands of radius 2 and 1 (at n = 4,000
  // above, only 1 and 0), so compare those rows with a scan of all their partners.
  const int64_t rows = 500;
  std::vector<std::pair<int64_t, int64_t>> want, got;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = i + 1; j < int64_t(dh.size()); ++j)
      if (data::hamming64(dh[i], dh[j]) <= data::kNearDHashMax &&
          data::hamming64(ph[i], ph[j]) <= data::kNearPHashMax)
        want.push_back({i, j});
  for (const data::NearPair& p : pairs)
    if (p.a < rows) got.push_back({p.a, p.b});
  EXPECT_GT(want.size(), 50u);
  EXPECT_EQ(got, want);
}

// ---- groups and percentiles ----

TEST(ImageAnalysis, ConnectedGroupsOfAHandGraph) {
  // 0-3, 3-7, 7-0 (a cycle), 5-2, 8 alone with a self-loop, 1, 4, 6 isolated; edges unordered.
  const auto g = data::connected_groups(9, {{3, 0}, {7, 3}, {0, 7}, {5, 2}, {8, 8}, {2, 5}});
  const std::vector<std::vector<int64_t>> want = {{0, 3, 7}, {2, 5}};
  EXPECT_EQ(g, want);
  // A chain whose root changes: 6-5, 4-3, 5-4, 3-1 join into one group.
  const std::vector<std::vector<int64_t>> chain = {{1, 3, 4, 5, 6}};
  EXPECT_EQ(data::connected_groups(7, {{6, 5}, {4, 3}, {5, 4}, {3, 1}}), chain);
  EXPECT_TRUE(data::connected_groups(0, {}).empty());
  expect_error([] { data::connected_groups(3, {{0, 3}}); }, {"connected_groups", "(0, 3)"});
}

TEST(ImageAnalysis, PercentileMatchesNumpy) {
  // numpy.percentile([7, 1, 3, 10, 4], q): sorted 1 3 4 7 10, position q/100*4.
  const std::vector<double> v = {7, 1, 3, 10, 4};
  EXPECT_EQ(data::percentile(v, 0), 1.0);
  EXPECT_EQ(data::percentile(v, 100), 10.0);
  EXPECT_EQ(data::percentile(v, 50), 4.0);
  EXPECT_DOUBLE_EQ(data::percentile(v, 25), 3.0);
  EXPECT_DOUBLE_EQ(data::percentile(v, 10), 1.8);     // 1 + 0.4 * 2
  EXPECT_DOUBLE_EQ(data::percentile(v, 90), 8.8);     // 7 + 0.6 * 3
  EXPECT_DOUBLE_EQ(data::percentile(v, 99.5), 9.94);  // 7 + 0.98 * 3
  EXPECT_DOUBLE_EQ(data::percentile(v, 0.5), 1.04);   // 1 + 0.02 * 2
  EXPECT_EQ(data::percentile({42}, 37), 42.0);
  expect_error([] { data::percentile({}, 50); }, {"percentile", "empty"});
  expect_error([] { data::percentile({1, 2}, 101); }, {"percentile", "101"});
}

}  // namespace
