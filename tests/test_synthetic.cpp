// The synthetic dataset generator: scenes are deterministic per seed, valid at any allowed size
// and separable by class with simple colour/texture features (so a small CNN has something to
// learn); the writer lays files out as the Kaggle archive, never writes into a user's directory,
// and rejects bad options; the encoders produce well-formed JPEG and PNG streams.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/synthetic.h"
#include "engine/error.h"
#include "tests/testing.h"

namespace {
using engine::testing::expect_error;

namespace fs = std::filesystem;
using data::Image;

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("engine_test_synthetic_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool is_jpeg(const std::vector<uint8_t>& b) {
  return b.size() > 4 && b[0] == 0xFF && b[1] == 0xD8 && b[b.size() - 2] == 0xFF &&
         b[b.size() - 1] == 0xD9;
}

// Sorted regular-file names in dir.
std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// 4x4 colour thumbnail (48 values) plus mean horizontal and vertical gradient magnitudes.
std::vector<double> features(const Image& img) {
  std::vector<double> f(4 * 4 * 3 + 2, 0.0);
  int n = img.width;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      for (int c = 0; c < 3; ++c) f[((y * 4 / n) * 4 + x * 4 / n) * 3 + c] += img.row(y)[3 * x + c];
  for (int k = 0; k < 48; ++k) f[k] /= double(n * n) / 16.0;
  for (int y = 0; y + 1 < n; ++y)
    for (int x = 0; x + 1 < n; ++x)
      for (int c = 0; c < 3; ++c) {
        f[48] += std::abs(img.row(y)[3 * (x + 1) + c] - img.row(y)[3 * x + c]);
        f[49] += std::abs(img.row(y + 1)[3 * x + c] - img.row(y)[3 * x + c]);
      }
  f[48] /= double(3 * (n - 1) * (n - 1));
  f[49] /= double(3 * (n - 1) * (n - 1));
  return f;
}

TEST(SyntheticScene, SameSeedSamePixelsOtherSeedOtherPixels) {
  for (int c = 0; c < 6; ++c) {
    Image a = data::draw_scene(c, 42, 64), b = data::draw_scene(c, 42, 64);
    EXPECT_EQ(a.pixels, b.pixels) << data::kSceneClasses[c];
    EXPECT_NE(a.pixels, data::draw_scene(c, 43, 64).pixels) << data::kSceneClasses[c];
  }
  EXPECT_NE(data::draw_scene(0, 42, 64).pixels, data::draw_scene(1, 42, 64).pixels);
}

TEST(SyntheticScene, EveryClassDrawsAValidImageAtAnyAllowedSize) {
  ASSERT_EQ(data::kSceneClasses, (std::vector<std::string>{"buildings", "forest", "glacier",
                                                           "mountain", "sea", "street"}));
  for (int size : {8, 37, 150}) {
    for (int c = 0; c < 6; ++c) {
      Image img = data::draw_scene(c, 1, size);
      EXPECT_EQ(img.width, size);
      EXPECT_EQ(img.height, size);
      ASSERT_EQ(img.pixels.size(), size_t(size) * size * 3);
      // Something was drawn: not a single flat colour.
      auto [lo, hi] = std::minmax_element(img.pixels.begin(), img.pixels.end());
      EXPECT_GT(int(*hi) - int(*lo), 20) << data::kSceneClasses[c] << " at " << size;
    }
  }
}

TEST(SyntheticScene, ClassesAreSeparableByNearestClassMean) {
  constexpr int kFit = 30, kCheck = 30, kSize = 64;
  std::vector<std::vector<double>> mean(6, std::vector<double>(50, 0.0));
  for (int c = 0; c < 6; ++c)
    for (int k = 0; k < kFit; ++k) {
      auto f = features(data::draw_scene(c, 1000 + k, kSize));
      for (size_t d = 0; d < f.size(); ++d) mean[c][d] += f[d] / kFit;
    }
  int correct = 0;
  std::array<int, 6> wrong{};
  for (int c = 0; c < 6; ++c)
    for (int k = 0; k < kCheck; ++k) {
      auto f = features(data::draw_scene(c, 5000 + k, kSize));
      int best = -1;
      double best_d = 0;
      for (int m = 0; m < 6; ++m) {
        double d = 0;
        for (size_t i = 0; i < f.size(); ++i) d += (f[i] - mean[m][i]) * (f[i] - mean[m][i]);
        if (best < 0 || d < best_d) best = m, best_d = d;
      }
      if (best == c)
        ++correct;
      else
        ++wrong[c];
    }
  double accuracy = double(correct) / (6 * kCheck);
  EXPECT_GE(accuracy, 0.9) << "misclassified per class: buildings " << wrong[0] << ", forest "
                           << wrong[1] << ", glacier " << wrong[2] << ", mountain " << wrong[3]
                           << ", sea " << wrong[4] << ", street " << wrong[5];
}

TEST(SyntheticScene, RejectsBadClassOrSize) {
  expect_error([] { data::draw_scene(-1, 0); }, {"class index"});
  expect_error([] { data::draw_scene(6, 0); }, {"class index"});
  expect_error([] { data::draw_scene(0, 0, 7); }, {"size"});
  expect_error([] { data::draw_scene(0, 0, 4097); }, {"size"});
}

TEST(SyntheticEncode, JpegAndPngStreamsAreWellFormed) {
  Image img = data::draw_scene(4, 3, 33);
  EXPECT_TRUE(is_jpeg(data::encode_jpeg(img, 90)));
  EXPECT_TRUE(is_jpeg(data::encode_jpeg(img, 1)));
  auto png = data::encode_png(img);
  const uint8_t signature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  ASSERT_GT(png.size(), 8u);
  EXPECT_TRUE(std::equal(signature, signature + 8, png.begin()));

  expect_error([&] { data::encode_jpeg(img, 0); }, {"quality"});
  expect_error([&] { data::encode_jpeg(img, 101); }, {"quality"});
  expect_error([] { data::encode_png(Image()); }, {"empty image"});
  expect_error([] { data::encode_jpeg(Image(), 90); }, {"empty image"});
  Image bad(4, 4);
  bad.pixels.pop_back();
  expect_error([&] { data::encode_png(bad); }, {"pixel buffer"});
  expect_error([&] { data::encode_jpeg(bad, 90); }, {"pixel buffer"});
}

TEST(SyntheticDataset, WritesTheKaggleLayout) {
  TempDir tmp;
  data::SyntheticOptions o;
  o.out_dir = (tmp.path / "intel").string();
  o.train_per_class = 3;
  o.test_per_class = 2;
  o.pred_count = 4;
  o.size = 24;
  o.seed = 5;
  int64_t calls = 0, last_done = 0, last_total = 0;
  data::SyntheticSummary s = data::make_synthetic_dataset(
      o, [&](int64_t done, int64_t total) { ++calls, last_done = done, last_total = total; });
  EXPECT_EQ(s.train, 18);
  EXPECT_EQ(s.test, 12);
  EXPECT_EQ(s.pred, 4);
  EXPECT_EQ(calls, 34);
  EXPECT_EQ(last_done, 34);
  EXPECT_EQ(last_total, 34);

  fs::path out(o.out_dir);
  std::set<std::string> distinct;  // equal bytes would mean a reused seed
  int files = 0;
  auto check_dir = [&](const fs::path& dir, int count) {
    std::vector<std::string> names = files_in(dir);
    ASSERT_EQ(int(names.size()), count) << dir;
    for (int k = 0; k < count; ++k) {
      EXPECT_EQ(names[k], std::string(k < 10 ? "000" : "00") + std::to_string(k) + ".jpg");
      auto bytes = read_bytes(dir / names[k]);
      EXPECT_TRUE(is_jpeg(bytes)) << dir / names[k];
      distinct.insert(std::string(bytes.begin(), bytes.end()));
      ++files;
    }
  };
  for (const std::string& c : data::kSceneClasses) {
    check_dir(out / "seg_train" / "seg_train" / c, 3);
    check_dir(out / "seg_test" / "seg_test" / c, 2);
  }
  check_dir(out / "seg_pred" / "seg_pred", 4);
  EXPECT_EQ(int(distinct.size()), files) << "two images share their bytes";

  std::string text;
  {
    auto b = read_bytes(out / "SYNTHETIC.txt");
    text.assign(b.begin(), b.end());
  }
  for (const char* needle : {"procedurally generated", "state: complete", "seed: 5",
                             "--train-per-class 3", "--pred 4", "--size 24"})
    EXPECT_NE(text.find(needle), std::string::npos) << "SYNTHETIC.txt lacks '" << needle << "'";

  // Regenerating over a synthetic output is allowed, reproduces the same bytes, removes images
  // the smaller counts no longer include and leaves other files alone.
  auto first_train = read_bytes(out / "seg_train/seg_train/forest/0000.jpg");
  std::ofstream(out / "seg_pred" / "seg_pred" / "notes.txt") << "mine";
  o.train_per_class = 2;
  o.pred_count = 1;
  s = data::make_synthetic_dataset(o);
  EXPECT_EQ(s.train, 12);
  EXPECT_EQ(s.pred, 1);
  EXPECT_EQ(read_bytes(out / "seg_train/seg_train/forest/0000.jpg"), first_train);
  EXPECT_EQ(files_in(out / "seg_train/seg_train/forest"),
            (std::vector<std::string>{"0000.jpg", "0001.jpg"}));
  EXPECT_EQ(files_in(out / "seg_pred/seg_pred"),
            (std::vector<std::string>{"0000.jpg", "notes.txt"}));
}

TEST(SyntheticDataset, RefusesToWriteIntoAUsersDirectory) {
  TempDir tmp;
  fs::create_directories(tmp.path / "photos");
  std::ofstream(tmp.path / "photos" / "holiday.jpg") << "not ours";
  data::SyntheticOptions o;
  o.out_dir = (tmp.path / "photos").string();
  o.train_per_class = o.test_per_class = 1;
  o.pred_count = 0;
  o.size = 16;
  expect_error([&] { data::make_synthetic_dataset(o); }, {o.out_dir});
  EXPECT_EQ(files_in(tmp.path / "photos"), std::vector<std::string>{"holiday.jpg"});

  std::ofstream(tmp.path / "a_file") << "x";
  o.out_dir = (tmp.path / "a_file").string();
  expect_error([&] { data::make_synthetic_dataset(o); }, {"not a directory"});

  // An empty directory is fine.
  fs::create_directories(tmp.path / "empty");
  o.out_dir = (tmp.path / "empty").string();
  EXPECT_EQ(data::make_synthetic_dataset(o).train, 6);
}

TEST(SyntheticDataset, RejectsBadOptions) {
  TempDir tmp;
  auto base = [&] {
    data::SyntheticOptions o;
    o.out_dir = (tmp.path / "out").string();
    o.size = 16;
    return o;
  };
  auto expect_rejected = [&](data::SyntheticOptions o, const std::string& option) {
    expect_error([&] { data::make_synthetic_dataset(o); }, {option});
  };
  auto o = base();
  o.train_per_class = 0;
  expect_rejected(o, "train_per_class");
  o = base(), o.test_per_class = 0;
  expect_rejected(o, "test_per_class");
  o = base(), o.pred_count = -1;
  expect_rejected(o, "pred_count");
  o = base(), o.size = 7;
  expect_rejected(o, "size");
  o = base(), o.size = 4097;
  expect_rejected(o, "size");
  o = base(), o.jpeg_quality = 0;
  expect_rejected(o, "jpeg_quality");
  o = base(), o.out_dir = "";
  expect_rejected(o, "out_dir");
  EXPECT_FALSE(fs::exists(tmp.path / "out")) << "options are checked before anything is written";
}

}  // namespace
