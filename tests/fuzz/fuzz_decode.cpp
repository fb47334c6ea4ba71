// libFuzzer target for the path every image file takes: structural checks, stb_image decoding,
// then the transforms (resize, crop, random resized crop, flip, ToTensor). Built by
// -DENGINE_FUZZ=ON with clang, always with AddressSanitizer and UndefinedBehaviorSanitizer, and
// run for a bounded time by the test command (scripts/fuzz.sh). The only exception a bad file may
// raise is data::ImageError; anything else escaping, a crash, a leak or a sanitizer report fails.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/image.h"
#include "data/transforms.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  data::DecodeLimits limits;
  limits.max_pixels = int64_t(4) << 20;  // keeps each run fast; the limit logic is what is tested
  data::Image img;
  try {
    img = data::decode_image(bytes, size, limits);
  } catch (const data::ImageError&) {
    return 0;
  }
  if (img.empty() || img.pixels.size() != size_t(img.width) * size_t(img.height) * 3) __builtin_trap();
  // Sizes and random draws from the input itself, so the fuzzer steers the transforms too.
  const uint64_t h = size * 0x9E3779B97F4A7C15ull;
  const int out = 1 + int(h % 67);
  data::TransformOptions o;
  o.image_size = out;
  o.augment = (h >> 8) & 1;
  o.crop_scale_min = 0.08f;
  data::Transform t(o);
  data::SampleRandom rng(h, 0);
  std::vector<float> tensor(size_t(3) * out * out);
  t.finish(t.base(img), rng, tensor.data());
  data::Image small = data::resize_bilinear(img, 1 + int(h % 5), 1 + int((h >> 4) % 7));
  data::Image cropped = data::center_crop(img, 1 + int((h >> 12) % 200), 1 + int((h >> 20) % 200));
  data::hflip(cropped);
  return 0;
}
