// torchvision's ImageClassification preset (Resize(resize_size) + CenterCrop(224) + ToTensor +
// Normalize, the transforms of the ImageNet weights) against torchvision itself, on PNG files
// (fixtures from tests/py/fx_preprocess.py). Decoding a PNG, PIL's bilinear resize and the crop
// are exact, so the cropped uint8 image must equal torchvision's to the bit; the float output is
// held to the 1e-5 (ToTensor and Normalize are the same float32 operations in the same
// order, measured exact on these images).
#include <cstring>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/transforms.h"
#include "testing.h"

namespace {

using data::Image;
using engine::testing::fixture_path;
using engine::testing::get;

constexpr int kCrop = 224;
constexpr double kAtol = 1e-5;
// Every fixture image: both orientations, odd crop excesses rounding up and down (Python's round
// half to even), no-op resizes at 256, an image smaller than the crop; see fx_preprocess.py.
const char* const kImages[] = {"150x150", "150x113", "120x90",  "90x120", "97x211",
                               "300x200", "256x256", "256x300", "224x224"};

engine::TensorMap& fixtures() {
  static engine::TensorMap m = engine::testing::load_fixture("preprocess.safetensors");
  return m;
}

Image read(const std::string& name) {
  return data::read_image(fixture_path("preprocess/" + name + ".png"));
}

data::Transform preset(int resize_size) {
  data::TransformOptions o;
  o.image_size = kCrop;
  o.resize_size = resize_size;
  o.mean = data::kImageNetMean, o.std = data::kImageNetStd;
  return data::Transform(o);
}

engine::Tensor run(const data::Transform& t, const Image& base) {
  engine::Tensor out = engine::Tensor::empty({3, kCrop, kCrop});
  data::SampleRandom rng(0, 0);
  t.finish(base, rng, out.data<float>());
  return out;
}

// Number of bytes in which an image differs from a [H, W, 3] U8 reference (all of them when the
// shapes differ).
size_t pixel_mismatches(const Image& img, const engine::Tensor& ref) {
  EXPECT_EQ(engine::shape_str(ref.shape()), engine::shape_str({img.height, img.width, 3}));
  if (ref.numel() != int64_t(img.pixels.size())) return img.pixels.size() + 1;
  const uint8_t* r = ref.data<uint8_t>();
  size_t n = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) n += img.pixels[i] != r[i];
  return n;
}

TEST(Preprocess, ImageNetPresetMatchesTorchvision) {
  for (int resize : {256, 232}) {
    data::Transform t = preset(resize);
    for (const char* name : kImages) {
      SCOPED_TRACE(std::string(name) + " resize " + std::to_string(resize));
      Image base = t.base(read(name));
      // What the loader caches: torchvision's resized and cropped pixels, exactly.
      const std::string key = std::to_string(resize) + "." + name;
      EXPECT_EQ(pixel_mismatches(base, get(fixtures(), "crop" + key)), 0u);
      EXPECT_EQ(t.base_bytes(9999, 7), base.pixels.size());  // independent of the input size
      EXPECT_ALLCLOSE(run(t, base), get(fixtures(), "tv" + key), 0.0, kAtol);
    }
  }
}

// The output size against torchvision's Resize(size) on PIL images of the same shapes, among them
// squares and truncations that rounding would get wrong (150x113 -> 339x256, not 340; 1000x3 with
// 5 -> 1666x5, not 1667).
TEST(Preprocess, ResizeShorterSideSizesMatchTorchvision) {
  const engine::Tensor& rows = get(fixtures(), "sizes");
  ASSERT_EQ(rows.shape().size(), 2u);
  ASSERT_EQ(rows.shape()[1], 5);
  ASSERT_GE(rows.shape()[0], 10);
  const int64_t* r = rows.data<int64_t>();
  for (int64_t i = 0; i < rows.shape()[0]; ++i, r += 5) {
    SCOPED_TRACE(std::to_string(r[0]) + "x" + std::to_string(r[1]) + " shorter side " +
                 std::to_string(r[2]));
    Image img{int(r[0]), int(r[1])};
    for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = uint8_t(k * 37);
    Image out = data::resize_shorter_side(img, int(r[2]));
    EXPECT_EQ(out.width, r[3]);
    EXPECT_EQ(out.height, r[4]);
  }
}

// resize_size 0 (the default) is still the study's Resize((s, s)): torchvision's on 224, and
// resize_bilinear itself on the study's 64.
TEST(Preprocess, ZeroResizeSizeKeepsThePlainResize) {
  data::Transform plain = preset(0);
  for (const char* name : kImages) {
    SCOPED_TRACE(name);
    Image img = read(name);
    const engine::Tensor& ref = get(fixtures(), std::string("plain.") + name);
    EXPECT_ALLCLOSE(run(plain, plain.base(img)), ref, 0.0, kAtol);
  }
  data::TransformOptions o;  // image_size 64, no normalisation
  data::Transform study(o);
  Image img = read("150x150");
  Image base = study.base(img);
  Image expected = data::resize_bilinear(img, 64, 64);
  EXPECT_EQ(base.width, 64);
  EXPECT_EQ(base.height, 64);
  EXPECT_EQ(base.pixels, expected.pixels);
  EXPECT_EQ(study.base_bytes(150, 150), size_t(64) * 64 * 3);
}

TEST(Preprocess, ResizeSizeBelowImageSizeIsAnError) {
  for (int bad : {223, 1, -256}) {
    SCOPED_TRACE(bad);
    engine::testing::expect_error([&] { preset(bad); },
                                  {"resize size " + std::to_string(bad), "image size 224"});
  }
  EXPECT_NO_THROW(preset(kCrop));  // equal: the crop takes the whole shorter side
  engine::testing::expect_error([] { data::resize_shorter_side(Image(5, 5), 0); },
                                {"shorter side 0"});
  // A 2000:1 sliver would become 512000x256: refused before allocating it.
  engine::testing::expect_error([] { data::resize_shorter_side(Image(2000, 1), 256); },
                                {"2000x1", "512000"});
}

// With augmentation on, resize_size changes nothing: RandomResizedCrop draws from the decoded
// image, as before.
TEST(Preprocess, AugmentationIgnoresResizeSize) {
  data::TransformOptions o;
  o.image_size = 64;
  o.augment = true;
  data::Transform without(o);
  o.resize_size = 256;
  data::Transform with(o);
  Image img = read("97x211");
  Image base = with.base(img);
  EXPECT_EQ(base.width, 97);
  EXPECT_EQ(base.pixels, img.pixels);
  EXPECT_EQ(with.base_bytes(97, 211), without.base_bytes(97, 211));
  for (uint64_t s = 0; s < 4; ++s) {
    std::vector<float> a(3 * 64 * 64), b(3 * 64 * 64);
    data::SampleRandom ra(3, s * 32), rb(3, s * 32);
    with.finish(base, ra, a.data());
    without.finish(base, rb, b.data());
    EXPECT_EQ(a, b);
  }
}

}  // namespace
