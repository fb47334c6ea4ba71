// Decoding and transforms against PIL/torchvision (fixtures from tests/py/fx_images.py), and every
// kind of bad file the issue lists, generated here from good files: each must be refused with its
// reason, never crash, never hang.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>

#include "data/image.h"
#include "data/transforms.h"
#include "testing.h"

namespace {

using data::Image;
using engine::testing::fixture_path;
using engine::testing::get;
using engine::testing::load_fixture;

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
std::string image_file(const std::string& name) { return fixture_path("images/" + name); }

// Largest and mean absolute difference between an image and a [H, W, 3] U8 reference.
struct Diff {
  int max = 0;
  double mean = 0;
};
Diff diff(const Image& img, const engine::Tensor& ref) {
  Diff d;
  EXPECT_EQ(engine::shape_str(ref.shape()),
            engine::shape_str({img.height, img.width, 3}));
  if (ref.numel() != int64_t(img.pixels.size())) return {999, 999};
  const uint8_t* r = ref.data<uint8_t>();
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    int e = std::abs(int(img.pixels[i]) - int(r[i]));
    d.max = std::max(d.max, e);
    d.mean += e;
  }
  d.mean /= double(img.pixels.size());
  return d;
}

engine::TensorMap& fixtures() {
  static engine::TensorMap m = load_fixture("images.safetensors");
  return m;
}

// Lossless formats decode to exactly PIL's pixels.
TEST(Decode, LosslessFormatsMatchPilExactly) {
  for (const char* name : {"photo.png", "odd.png", "photo.bmp", "gray.png", "gray_alpha.png",
                           "rgba.png", "palette.png", "tiny.png", "rgb16.png"}) {
    SCOPED_TRACE(name);
    Image img = data::read_image(image_file(name));
    Diff d = diff(img, get(fixtures(), std::string("pil.") + name));
    EXPECT_EQ(d.max, 0);
  }
  // 16-bit grayscale keeps the high byte (PIL would clip the 16-bit value to 255 instead).
  Image g16 = data::read_image(image_file("gray16.png"));
  EXPECT_EQ(diff(g16, get(fixtures(), "expect.gray16.png")).max, 0);
}

// JPEG: stb's IDCT and chroma upsampling differ from libjpeg-turbo's in rounding. Measured on
// these files: mean difference 0.07 levels (0.006-0.01 for grayscale and CMYK), largest 3.
TEST(Decode, JpegMatchesPilWithinStatedError) {
  struct Case {
    const char* name;
    double mean;
    int max;
  };
  for (Case c : {Case{"photo_q90.jpg", 0.25, 6}, Case{"photo_prog.jpg", 0.25, 6},
                 Case{"gray.jpg", 0.05, 2}, Case{"cmyk.jpg", 0.05, 2}}) {
    SCOPED_TRACE(c.name);
    Image img = data::read_image(image_file(c.name));
    Diff d = diff(img, get(fixtures(), std::string("pil.") + c.name));
    EXPECT_LE(d.mean, c.mean);
    EXPECT_LE(d.max, c.max);
    std::cout << "[          ] " << c.name << ": mean |ours - PIL| " << d.mean << ", max " << d.max
              << "\n";
  }
}

TEST(Transforms, ResizeMatchesPilBitForBit) {
  struct Case {
    const char* key;
    const char* file;
    int w, h;
  };
  for (Case c : {Case{"photo_64x64", "photo.png", 64, 64}, Case{"photo_224x224", "photo.png", 224, 224},
                 Case{"photo_37x53", "photo.png", 37, 53}, Case{"photo_150x64", "photo.png", 150, 64},
                 Case{"photo_300x151", "photo.png", 300, 151}, Case{"odd_64x64", "odd.png", 64, 64},
                 Case{"odd_13x200", "odd.png", 13, 200}, Case{"tiny_64x64", "tiny.png", 64, 64},
                 Case{"photo_1x1", "photo.png", 1, 1}}) {
    SCOPED_TRACE(c.key);
    Image out = data::resize_bilinear(data::read_image(image_file(c.file)), c.w, c.h);
    EXPECT_EQ(diff(out, get(fixtures(), std::string("resize.") + c.key)).max, 0);
  }
}

// The study's input pipeline end to end on a JPEG: decode + Resize((64, 64)) + ToTensor, and with
// ImageNet normalisation. Differences come from the JPEG decode alone (resize and scaling are
// exact): at most the decoder's 3 levels, i.e. 3/255 after ToTensor.
TEST(Transforms, StudyPipelineMatchesTorchvision) {
  Image img = data::read_image(image_file("photo_q90.jpg"));
  for (bool norm : {false, true}) {
    data::TransformOptions o;
    o.image_size = 64;
    if (norm) o.mean = data::kImageNetMean, o.std = data::kImageNetStd;
    data::Transform t(o);
    engine::Tensor ours = engine::Tensor::empty({3, 64, 64});
    data::SampleRandom rng(0, 0);
    t.finish(t.base(img), rng, ours.data<float>());
    const engine::Tensor& ref = get(fixtures(), norm ? "tv.resize64_norm" : "tv.resize64");
    auto a = ours.to_vector(), b = ref.to_vector();
    ASSERT_EQ(a.size(), b.size());
    double worst = 0, mean = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      double e = std::abs(double(a[i]) - b[i]);
      worst = std::max(worst, e);
      mean += e;
    }
    mean /= double(a.size());
    double scale = norm ? 1.0 / 0.224 : 1.0;  // normalisation stretches a level by 1/std
    EXPECT_LE(worst, 3.0 / 255 * scale + 1e-6) << "normalised: " << norm;
    EXPECT_LE(mean, 0.25 / 255 * scale) << "normalised: " << norm;
  }
  // On exactly PIL's decoded pixels, ToTensor is exact.
  data::TransformOptions o;
  data::Transform t(o);
  engine::Tensor ours = engine::Tensor::empty({3, 64, 64});
  data::SampleRandom rng(0, 0);
  const engine::Tensor& pil = get(fixtures(), "pil.photo_q90.jpg");
  Image pil_img(150, 150);
  std::memcpy(pil_img.pixels.data(), pil.data<uint8_t>(), pil_img.pixels.size());
  t.finish(t.base(pil_img), rng, ours.data<float>());
  EXPECT_EQ(engine::testing::rel_err(ours, get(fixtures(), "tv.resize64")), 0.0);
}

TEST(Transforms, CenterCropMatchesTorchvision) {
  Image odd = data::read_image(image_file("odd.png"));  // 97x61
  EXPECT_EQ(diff(data::center_crop(odd, 40, 30), get(fixtures(), "tv.center_crop_40x30")).max, 0);
  // Larger than the image: zero padding around it, as torchvision pads.
  EXPECT_EQ(diff(data::center_crop(odd, 120, 80), get(fixtures(), "tv.center_crop_120x80")).max, 0);
}

TEST(Transforms, FlipAndRandomResizedCrop) {
  Image img(3, 1);
  img.pixels = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  data::hflip(img);
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{7, 8, 9, 4, 5, 6, 1, 2, 3}));
  // Crop boxes always lie inside the image and follow the scale bounds; the same stream gives
  // the same box.
  for (uint64_t s = 0; s < 200; ++s) {
    data::SampleRandom a(5, s * 32), b(5, s * 32);
    data::CropBox box = data::random_resized_crop_box(150, 100, a, {0.5f, 1.f});
    data::CropBox again = data::random_resized_crop_box(150, 100, b, {0.5f, 1.f});
    EXPECT_EQ(box.x, again.x);
    EXPECT_EQ(box.w, again.w);
    EXPECT_GE(box.x, 0);
    EXPECT_GE(box.y, 0);
    EXPECT_LE(box.x + box.w, 150);
    EXPECT_LE(box.y + box.h, 100);
    EXPECT_GE(box.w * box.h, 0.45 * 150 * 100);  // rounding slack below scale 0.5
  }
  // A 1x1 image goes through the whole augmenting pipeline.
  data::TransformOptions o;
  o.augment = true;
  o.image_size = 16;
  data::Transform t(o);
  Image one(1, 1);
  one.pixels = {10, 20, 30};
  std::vector<float> out(3 * 16 * 16);
  data::SampleRandom rng(1, 0);
  t.finish(t.base(one), rng, out.data());
  EXPECT_FLOAT_EQ(out[0], 10.f / 255);
  EXPECT_FLOAT_EQ(out[16 * 16 * 2 + 255], 30.f / 255);
}

// ---- bad input ----

std::string refusal(const std::vector<uint8_t>& bytes) {
  try {
    data::decode_image(bytes.data(), bytes.size());
  } catch (const data::ImageError& e) {
    return e.reason();
  }
  return "";
}

void expect_refused(const std::vector<uint8_t>& bytes, const std::string& words) {
  std::string why = refusal(bytes);
  EXPECT_NE(why.find(words), std::string::npos) << "reason was: '" << why << "'";
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}
void put_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
}

TEST(BadInput, EmptyTextAndUnknownBytes) {
  expect_refused({}, "empty file");
  std::string text = "this is not an image, just a text file named photo.jpg\n";
  expect_refused(std::vector<uint8_t>(text.begin(), text.end()), "holds text");
  expect_refused({0x00, 0x01, 0x02, 0x03, 0x04}, "not a JPEG, PNG or BMP");
  // A JPEG signature followed by noise.
  std::vector<uint8_t> noise = {0xFF, 0xD8, 0xFF};
  for (int i = 0; i < 500; ++i) noise.push_back(uint8_t(i * 37 + 11));
  EXPECT_NE(refusal(noise), "");
}

TEST(BadInput, TruncatedJpegIsRefusedAtEveryCut) {
  std::vector<uint8_t> jpg = slurp(image_file("photo_q90.jpg"));
  ASSERT_GT(jpg.size(), 1000u);
  EXPECT_EQ(refusal(jpg), "");
  // Without its end-of-image marker, and cut anywhere: stb would fill the rest with grey.
  std::vector<uint8_t> no_eoi(jpg.begin(), jpg.end() - 2);
  expect_refused(no_eoi, "truncated JPEG");
  for (size_t cut = 3; cut < jpg.size(); cut += 97) {
    SCOPED_TRACE(cut);
    EXPECT_NE(refusal(std::vector<uint8_t>(jpg.begin(), jpg.begin() + cut)), "");
  }
  std::vector<uint8_t> half(jpg.begin(), jpg.begin() + jpg.size() / 2);
  expect_refused(half, "truncated JPEG");
  // Bytes after the end-of-image marker are allowed (cameras append them).
  std::vector<uint8_t> tail = jpg;
  tail.insert(tail.end(), {0, 0, 0, 0});
  EXPECT_EQ(refusal(tail), "");
}

TEST(BadInput, TruncatedPngAndBadChecksum) {
  std::vector<uint8_t> png = slurp(image_file("photo.png"));
  EXPECT_EQ(refusal(png), "");
  for (size_t cut = 1; cut < png.size(); cut += 211) {
    SCOPED_TRACE(cut);
    EXPECT_NE(refusal(std::vector<uint8_t>(png.begin(), png.begin() + cut)), "");
  }
  expect_refused(std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2), "truncated PNG");
  // One flipped bit in the compressed data: the IDAT CRC no longer matches.
  std::vector<uint8_t> flipped = png;
  flipped[png.size() / 2] ^= 0x10;
  expect_refused(flipped, "bad CRC in chunk 'IDAT'");
}

TEST(BadInput, HugeDimensionsAreRefusedFromTheHeader) {
  // PNG whose IHDR claims 100000 x 100000 with a valid CRC: only the size rule can catch it.
  std::vector<uint8_t> png = slurp(image_file("tiny.png"));
  put_be32(&png[16], 100000);
  put_be32(&png[20], 100000);
  put_be32(&png[29], crc32(&png[12], 17));
  expect_refused(png, "claims 100000x100000 pixels");
  // JPEG frame header claiming 60000 x 60000 (the most a JPEG can say is 65535).
  std::vector<uint8_t> jpg = slurp(image_file("photo_q90.jpg"));
  for (size_t i = 2; i + 9 < jpg.size(); ++i) {
    if (jpg[i] == 0xFF && (jpg[i + 1] == 0xC0 || jpg[i + 1] == 0xC2)) {
      jpg[i + 5] = 0xEA, jpg[i + 6] = 0x60, jpg[i + 7] = 0xEA, jpg[i + 8] = 0x60;
      break;
    }
  }
  expect_refused(jpg, "claims 60000x60000 pixels");
  // BMP claiming 100000 x 100000.
  std::vector<uint8_t> bmp = slurp(image_file("photo.bmp"));
  for (int off : {18, 22}) {
    bmp[off] = 0xA0, bmp[off + 1] = 0x86, bmp[off + 2] = 0x01, bmp[off + 3] = 0x00;
  }
  expect_refused(bmp, "claims 100000x100000 pixels");
  // Lower limits are honoured too.
  std::vector<uint8_t> ok = slurp(image_file("photo.png"));
  data::DecodeLimits small;
  small.max_pixels = 100 * 100;
  EXPECT_THROW(data::decode_image(ok.data(), ok.size(), small), data::ImageError);
}

TEST(BadInput, TruncatedBmp) {
  std::vector<uint8_t> bmp = slurp(image_file("photo.bmp"));
  EXPECT_EQ(refusal(bmp), "");
  expect_refused(std::vector<uint8_t>(bmp.begin(), bmp.end() - 100), "truncated BMP");
  expect_refused(std::vector<uint8_t>(bmp.begin(), bmp.begin() + 20), "truncated BMP");
}

TEST(BadInput, OneByOneImageIsValid) {
  Image img = data::read_image(image_file("tiny.png"));
  EXPECT_EQ(img.width, 1);
  EXPECT_EQ(img.height, 1);
}

// Corrupt entropy-coded data with the structure intact: stb either refuses or decodes garbage;
// either way no crash (the fuzz target covers this space much more widely).
TEST(BadInput, CorruptJpegDataNeverCrashes) {
  std::vector<uint8_t> jpg = slurp(image_file("photo_q90.jpg"));
  for (size_t k = 0; k < 40; ++k) {
    std::vector<uint8_t> bad = jpg;
    for (size_t i = jpg.size() / 3 + k * 13; i < jpg.size() - 2; i += 53 + k) {
      bad[i] = uint8_t(bad[i] * 31 + k);
    }
    try {
      Image img = data::decode_image(bad.data(), bad.size());
      EXPECT_EQ(img.width, 150);
    } catch (const data::ImageError&) {
    }
  }
}

// Inputs on which stb 2.27 itself misbehaves (out-of-bounds reads and writes), found by the fuzz
// target: check_image refuses each with a reason before stb sees it.
TEST(BadInput, FuzzerFindingsAreRefused) {
  const std::string dir = std::string(ENGINE_SOURCE_DIR) + "/tests/fuzz/regressions";
  const std::map<std::string, std::string> expected = {
      {"jpeg_dht_more_than_256_codes", "more than 256 codes"},
      {"jpeg_scan_undefined_huffman_table", "never defined"}};
  for (const auto& [name, words] : expected) {
    SCOPED_TRACE(name);
    expect_refused(slurp(dir + "/" + name), words);
  }
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_NE(refusal(slurp(e.path().string())), "") << e.path();
  }
  EXPECT_EQ(files, expected.size()) << "a regression input without a stated reason";
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("engine_decode_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
  static inline int counter_ = 0;
};

TEST(BadInput, UnreadableFilesNameThePath) {
  TempDir dir;
  auto reason_for = [](const std::string& path) -> std::string {
    try {
      data::read_image(path);
    } catch (const data::ImageError& e) {
      EXPECT_EQ(e.path(), path);
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
      return e.reason();
    }
    return "";
  };
  EXPECT_NE(reason_for(dir / "missing.jpg").find("No such file"), std::string::npos);
  std::filesystem::create_symlink(dir / "nowhere.jpg", dir / "dangling.jpg");
  EXPECT_NE(reason_for(dir / "dangling.jpg").find("cannot read"), std::string::npos);
  std::filesystem::create_directory(dir / "folder.jpg");
  EXPECT_EQ(reason_for(dir / "folder.jpg"), "not a regular file");
  // A FIFO would block a naive open() forever.
  ASSERT_EQ(mkfifo((dir / "pipe.jpg").c_str(), 0600), 0);
  EXPECT_EQ(reason_for(dir / "pipe.jpg"), "not a regular file");
  { std::ofstream(dir / "empty.jpg"); }
  EXPECT_EQ(reason_for(dir / "empty.jpg"), "empty file (0 bytes)");
  if (geteuid() != 0) {  // root reads anything
    std::filesystem::copy_file(image_file("photo.png"), dir / "locked.png");
    chmod((dir / "locked.png").c_str(), 0);
    EXPECT_NE(reason_for(dir / "locked.png").find("Permission denied"), std::string::npos);
  }
}

}  // namespace
