// Image transforms, each the equivalent of a torchvision transform on a PIL image, so that a
// model trained here sees the pixels the study's PyTorch pipeline fed it:
//   resize_bilinear       Resize((h, w)) with PIL's BILINEAR filter: Pillow's own separable
//                         two-pass algorithm (support widened by the scale when shrinking, i.e.
//                         antialiased; 22-bit fixed-point coefficients; rounding to uint8 between
//                         the passes), so results agree with PIL to the last bit.
//   resize_shorter_side   Resize(size) with one int: the shorter side becomes size, the longer
//                         one int(size * long / short), then resize_bilinear.
//   center_crop           CenterCrop (zero padding when the crop is larger than the image)
//   random_resized_crop_box  RandomResizedCrop's parameter draw (10 attempts, then a central crop)
//   hflip                 RandomHorizontalFlip's flip
//   to_chw_float          ToTensor (x / 255, HWC -> CHW) followed by Normalize(mean, std)
// A Transform bundles the per-sample pipeline: a deterministic part whose result the loader may
// cache (decode + resize, or decode + resize + centre crop) and a random part drawn from the
// sample's own random stream. Without augmentation it is either the study's Resize((s, s)) or
// torchvision's ImageClassification preset of the ImageNet weights (Resize(resize_size) +
// CenterCrop(s)), each followed by ToTensor + Normalize.
#pragma once
#include <array>
#include <cstdint>

#include "data/image.h"
#include "engine/random.h"

namespace data {

Image resize_bilinear(const Image& src, int out_w, int out_h);
// torchvision's Resize(size) with an int on a PIL image: the shorter side becomes `size` and the
// longer int(size * long / short), truncated as torchvision's _compute_resized_output_size does
// (so 150x113 -> 339x256, not the rounded 340); a square image becomes size x size. Bilinear,
// antialiased. Used by the ImageNet preset, whose crop then needs the aspect ratio kept. An output
// over the decoder's default 64-megapixel limit (a sliver of an image) is an error.
Image resize_shorter_side(const Image& src, int size);
// Region [x, x+w) x [y, y+h) of src; parts outside src are zero (black), as torchvision pads.
Image crop(const Image& src, int x, int y, int w, int h);
Image center_crop(const Image& src, int w, int h);
void hflip(Image& img);

struct CropBox {
  int x = 0, y = 0, w = 0, h = 0;
};
// A sample-local random stream: Philox counters (seed, base + i), so the numbers drawn for one
// sample depend on the seed and the sample's position alone, never on which thread runs it.
class SampleRandom {
 public:
  SampleRandom(uint64_t seed, uint64_t base) : seed_(seed), next_(base) {}
  float uniform() { return engine::Philox::uniform(seed_, 0, next_++); }  // [0, 1)
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  int below(int n);  // uniform integer in [0, n)

 private:
  uint64_t seed_, next_;
};
CropBox random_resized_crop_box(int width, int height, SampleRandom& rng,
                                std::array<float, 2> scale = {0.08f, 1.f},
                                std::array<float, 2> ratio = {3.f / 4.f, 4.f / 3.f});

// out[c][y][x] = (pixel / 255 - mean[c]) / std[c], float32, CHW.
void to_chw_float(const Image& img, float* out, const std::array<float, 3>& mean = {0, 0, 0},
                  const std::array<float, 3>& std = {1, 1, 1});

// ImageNet statistics (torchvision's), for the transfer-learning models.
constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

struct TransformOptions {
  int image_size = 64;  // output is image_size x image_size
  // 0: Resize((image_size, image_size)), as the study (distorts the aspect ratio). > 0 (at least
  // image_size): torchvision's ImageClassification preset, resize_shorter_side(resize_size) then
  // center_crop(image_size): 256 for ResNet-50/MobileNetV2 IMAGENET1K_V1, 232 for ResNet-50 V2.
  int resize_size = 0;
  // Training augmentation: RandomResizedCrop(image_size, scale=(crop_scale_min, 1)) and
  // RandomHorizontalFlip(0.5), from the decoded image whatever resize_size is (torchvision's
  // ImageNet training recipe crops from the original too; the preset is for evaluation).
  bool augment = false;
  float crop_scale_min = 0.5f;
  std::array<float, 3> mean = {0, 0, 0}, std = {1, 1, 1};  // identity: no normalisation
};

class Transform {
 public:
  explicit Transform(TransformOptions o);
  const TransformOptions& options() const { return opt_; }
  // The deterministic part: the image the loader caches. Without augmentation, the
  // image_size x image_size image (resized, or resized and centre-cropped when resize_size > 0);
  // with it, the decoded image (crops are drawn from the original).
  Image base(Image decoded) const;
  // Bytes base() keeps for an image of w x h (for the cache's budget).
  size_t base_bytes(int w, int h) const;
  // The random part, into a CHW float buffer of 3 * image_size^2. Draws at most 32 numbers.
  void finish(const Image& base, SampleRandom& rng, float* out) const;
  static constexpr uint64_t kDrawsPerSample = 32;

 private:
  TransformOptions opt_;
};

}  // namespace data
