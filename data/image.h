// 8-bit RGB images in memory, and the one place files become images: decode_image (stb_image,
// restricted to JPEG, PNG and BMP, with size limits checked before any pixel memory is allocated)
// and the encoders the synthetic dataset generator writes with (stb_image_write).
//
// Every failure is an ImageError naming the file and the reason ("x.jpg: truncated JPEG: no
// end-of-image marker"), so the dataset scan and the loader can skip a bad file with one warning.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"

namespace data {

// Row-major, interleaved RGB (HWC), 3 bytes per pixel, no row padding.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int w, int h) : width(w), height(h), pixels(size_t(w) * size_t(h) * 3) {}
  uint8_t* row(int y) { return pixels.data() + size_t(y) * size_t(width) * 3; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * size_t(width) * 3; }
  bool empty() const { return width == 0 || height == 0; }
};

enum class ImageFormat { Unknown, Jpeg, Png, Bmp };
const char* format_name(ImageFormat f);
// From the first bytes (magic numbers), never from the file name.
ImageFormat sniff_format(const uint8_t* data, size_t size);

struct DecodeLimits {
  // A header claiming more than this is refused before any allocation. stb's own compile-time
  // cap (STBI_MAX_DIMENSIONS) is set to 16384 per side in the decoder's translation unit.
  int64_t max_side = 16384;
  int64_t max_pixels = int64_t(64) << 20;  // 64 megapixels: 192 MB of RGB
  int64_t max_file_bytes = int64_t(256) << 20;
};

// A file that cannot be used: path (may be empty for in-memory data) and the reason alone.
class ImageError : public engine::Error {
 public:
  ImageError(std::string path, std::string reason);
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_, reason_;
};

struct ImageInfo {
  ImageFormat format = ImageFormat::Unknown;
  int width = 0, height = 0;
};

// Structural checks that need no pixel decoding: known format, dimensions within limits, PNG
// chunk CRCs and IEND present, JPEG end-of-image marker present after the scan, BMP pixel data
// inside the file. Throws ImageError (path "" ) on the first problem.
ImageInfo check_image(const uint8_t* data, size_t size, const DecodeLimits& limits = {});

// check_image, then decode to 8-bit RGB. Grayscale, grayscale+alpha, RGBA, palette and 16-bit
// PNGs become 8-bit RGB (alpha dropped, as PIL's convert("RGB")); CMYK/YCCK JPEGs are converted
// to RGB by stb (Adobe inverted-CMYK convention). Throws ImageError (path "").
Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits = {});

// Reads a whole file, refusing anything that is not a regular file (a FIFO named x.jpg would
// otherwise block forever) or is larger than limits.max_file_bytes. Throws ImageError naming path.
std::vector<uint8_t> read_file_bytes(const std::string& path, const DecodeLimits& limits = {});
// read_file_bytes + decode_image, errors naming path.
Image read_image(const std::string& path, const DecodeLimits& limits = {});

// Encoders (stb_image_write). quality 1..100. Throws engine::Error on failure.
std::vector<uint8_t> encode_jpeg(const Image& img, int quality = 90);
std::vector<uint8_t> encode_png(const Image& img);

}  // namespace data
