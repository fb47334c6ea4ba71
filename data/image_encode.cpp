// JPEG and PNG encoding of in-memory images with stb_image_write, used by the synthetic dataset
// generator. Encoding goes through the *_to_func writers into a vector, so no FILE* is involved and
// the caller decides how the bytes reach disk (atomically, via engine::write_file_atomic).
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

// STATIC keeps stb's symbols private to this file, so another translation unit (or a system
// libstb) carrying its own copy cannot clash at link time. NO_STDIO: only the in-memory writers.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace data {
namespace {

void append(void* context, void* bytes, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(bytes);
  out->insert(out->end(), p, p + size);
}

void check_image_for(const char* what, const Image& img) {
  ENGINE_CHECK(!img.empty() && img.width > 0 && img.height > 0, what, ": empty image (", img.width,
               "x", img.height, ")");
  size_t want = size_t(img.width) * size_t(img.height) * 3;
  ENGINE_CHECK(img.pixels.size() == want, what, ": pixel buffer holds ", img.pixels.size(),
               " bytes but a ", img.width, "x", img.height, " RGB image needs ", want);
  // stb computes offsets in int; refuse what would overflow rather than write garbage.
  ENGINE_CHECK(want <= size_t(INT32_MAX), what, ": image ", img.width, "x", img.height,
               " is too large to encode");
}

}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& img, int quality) {
  check_image_for("encode_jpeg", img);
  ENGINE_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in 1..100, got ",
               quality);
  // JPEG's baseline format stores sizes in 16 bits.
  ENGINE_CHECK(img.width <= 65535 && img.height <= 65535, "encode_jpeg: ", img.width, "x",
               img.height, " exceeds JPEG's 65535-pixel side limit");
  std::vector<uint8_t> out;
  out.reserve(size_t(img.width) * size_t(img.height) / 4 + 1024);
  int ok =
      stbi_write_jpg_to_func(append, &out, img.width, img.height, 3, img.pixels.data(), quality);
  ENGINE_CHECK(ok != 0 && !out.empty(), "encode_jpeg: stb_image_write failed on a ", img.width, "x",
               img.height, " image");
  return out;
}

std::vector<uint8_t> encode_png(const Image& img) {
  check_image_for("encode_png", img);
  std::vector<uint8_t> out;
  int ok = stbi_write_png_to_func(append, &out, img.width, img.height, 3, img.pixels.data(),
                                  img.width * 3);
  ENGINE_CHECK(ok != 0 && !out.empty(), "encode_png: stb_image_write failed on a ", img.width, "x",
               img.height, " image");
  return out;
}

}  // namespace data
