// The engine's only image decoder: stb_image compiled here, in this one translation unit, for
// JPEG, PNG and BMP alone. stb trusts its input more than a training engine can afford to, so
// every file first passes check_image, a walk over the container structure that needs no pixel
// memory:
//   - JPEG: segments walked to the frame header (dimensions) and through every scan to the
//     end-of-image marker. stb decodes a truncated JPEG "successfully", padding the missing data
//     with grey; PIL (and so the study's PyTorch stack) raises "image file is truncated". We
//     refuse such a file, so a half-grey image never trains the model silently.
//   - PNG: every chunk's CRC (stb does not check them, PIL does), IHDR first, IEND present.
//   - BMP: the pixel array must lie inside the file (stb would read zeros past the end).
//   - Inputs that crash stb itself are refused before it sees them; each such check names the
//     bug it guards against (found by tests/fuzz/fuzz_decode.cpp under ASan/UBSan).
// Dimensions come from our own parse, so a header claiming 100000x100000 pixels is refused with
// its numbers before stb allocates anything; STBI_MAX_DIMENSIONS backs this up inside stb.
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "data/image.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS 16384
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace data {
namespace {

[[noreturn]] void refuse(const std::string& reason) { throw ImageError("", reason); }

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

// CRC-32 (ISO-HDLC, the one PNG uses), table-driven.
const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> table{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[n] = c;
    }
    return table;
  }();
  return t;
}
uint32_t crc32(const uint8_t* p, size_t n) {
  const auto& t = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string chunk_name(const uint8_t* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    char c = static_cast<char>(p[i]);
    s += (c >= 32 && c < 127) ? c : '?';
  }
  return s;
}

void check_dimensions(const char* fmt, int64_t w, int64_t h, const DecodeLimits& limits) {
  if (w <= 0 || h <= 0) {
    refuse(std::string(fmt) + " header gives an empty image (" + std::to_string(w) + "x" +
           std::to_string(h) + ")");
  }
  if (w > limits.max_side || h > limits.max_side || w * h > limits.max_pixels) {
    refuse(std::string(fmt) + " header claims " + std::to_string(w) + "x" + std::to_string(h) +
           " pixels, above the limit of " + std::to_string(limits.max_side) + " per side and " +
           std::to_string(limits.max_pixels) + " pixels");
  }
}

ImageInfo check_png(const uint8_t* d, size_t n, const DecodeLimits& limits) {
  ImageInfo info{ImageFormat::Png, 0, 0};
  size_t pos = 8;
  bool seen_ihdr = false, seen_idat = false;
  while (true) {
    if (n - pos < 12) {
      refuse(pos == n ? "truncated PNG: file ends before the IEND chunk"
                      : "truncated PNG: chunk header cut off at byte " + std::to_string(pos));
    }
    uint32_t len = be32(d + pos);
    const uint8_t* type = d + pos + 4;
    std::string name = chunk_name(type);
    if (len > 0x7FFFFFFFu) refuse("corrupt PNG: chunk '" + name + "' has an invalid length");
    if (uint64_t(n - pos - 12) < len) {
      refuse("truncated PNG: chunk '" + name + "' needs " + std::to_string(len) +
             " bytes, the file ends after " + std::to_string(n - pos - 12));
    }
    uint32_t stored = be32(type + 4 + len);
    if (crc32(type, size_t(len) + 4) != stored) {
      refuse("corrupt PNG: bad CRC in chunk '" + name + "' at byte " + std::to_string(pos));
    }
    if (!seen_ihdr) {
      if (name != "IHDR" || len != 13) refuse("corrupt PNG: the first chunk is not IHDR");
      seen_ihdr = true;
      info.width = int(std::min<uint32_t>(be32(type + 4), 0x7FFFFFFF));
      info.height = int(std::min<uint32_t>(be32(type + 8), 0x7FFFFFFF));
      check_dimensions("PNG", be32(type + 4), be32(type + 8), limits);
    }
    if (name == "IDAT") seen_idat = true;
    pos += size_t(len) + 12;
    if (name == "IEND") break;
  }
  if (!seen_idat) refuse("corrupt PNG: no image data (IDAT) chunk");
  return info;
}

bool is_sof(uint8_t m) {
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

// Huffman table segment: each table's 16 code counts must fit the segment and sum to at most 256
// symbols. stb 2.27 writes count-sum + 1 entries into a 257-entry array without checking (found by
// the fuzz target: index 257 out of bounds in stbi__build_huffman).
// defined: bit (tc * 4 + th) set for every table seen so far.
void check_jpeg_dht(const uint8_t* p, size_t len, unsigned& defined) {
  size_t pos = 0;
  while (pos < len) {
    if (len - pos < 17) refuse("corrupt JPEG: Huffman table segment cut short");
    const uint8_t tc = p[pos] >> 4, th = p[pos] & 15;
    if (tc > 1 || th > 3) refuse("corrupt JPEG: bad Huffman table id");
    size_t symbols = 0;
    for (int i = 1; i <= 16; ++i) symbols += p[pos + i];
    if (symbols > 256) refuse("corrupt JPEG: Huffman table with more than 256 codes");
    pos += 17;
    if (len - pos < symbols) refuse("corrupt JPEG: Huffman table segment cut short");
    pos += symbols;
    defined |= 1u << (tc * 4 + th);
  }
}

// Scan header: every Huffman table the scan decodes with must have been defined. stb 2.27 keeps
// its tables in uninitialised memory and walks past maxcode[17] on a table never defined (found
// by the fuzz target: index 18 out of bounds in stbi__jpeg_huff_decode).
void check_jpeg_sos(const uint8_t* p, size_t len, bool progressive, unsigned defined) {
  if (len < 1) refuse("corrupt JPEG: scan header cut short");
  const size_t ns = p[0];
  if (ns < 1 || ns > 4 || len < 1 + 2 * ns + 3) refuse("corrupt JPEG: bad scan header");
  const uint8_t ss = p[1 + 2 * ns], ah = p[3 + 2 * ns] >> 4;
  for (size_t i = 0; i < ns; ++i) {
    const unsigned td = p[2 + 2 * i] >> 4, ta = p[2 + 2 * i] & 15;
    if (td > 3 || ta > 3) refuse("corrupt JPEG: bad Huffman table id in scan header");
    const bool needs_dc = progressive ? (ss == 0 && ah == 0) : true;
    const bool needs_ac = progressive ? ss > 0 : true;
    if ((needs_dc && !(defined & (1u << td))) || (needs_ac && !(defined & (1u << (4 + ta))))) {
      refuse("corrupt JPEG: scan uses a Huffman table that was never defined");
    }
  }
}

ImageInfo check_jpeg(const uint8_t* d, size_t n, const DecodeLimits& limits) {
  ImageInfo info{ImageFormat::Jpeg, 0, 0};
  size_t pos = 2;  // after SOI
  bool seen_frame = false, progressive = false;
  unsigned tables = 0;  // Huffman tables defined so far
  auto truncated = [] { refuse("truncated JPEG: no end-of-image marker"); };
  while (true) {
    // A marker: one or more 0xFF, then the code.
    if (pos >= n) truncated();
    if (d[pos] != 0xFF) {
      refuse("corrupt JPEG: expected a marker at byte " + std::to_string(pos));
    }
    while (pos < n && d[pos] == 0xFF) ++pos;
    if (pos >= n) truncated();
    uint8_t m = d[pos++];
    if (m == 0xD9) break;                                  // EOI
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no length
    if (n - pos < 2) truncated();
    size_t len = be16(d + pos);
    if (len < 2) refuse("corrupt JPEG: segment at byte " + std::to_string(pos) + " has length < 2");
    if (n - pos < len) truncated();
    if (m == 0xC4) check_jpeg_dht(d + pos + 2, len - 2, tables);
    if (m == 0xDA) {
      if (!seen_frame) refuse("corrupt JPEG: scan before the frame header");
      check_jpeg_sos(d + pos + 2, len - 2, progressive, tables);
    }
    if (is_sof(m)) {
      if (len < 8) refuse("corrupt JPEG: frame header too short");
      int64_t h = be16(d + pos + 3), w = be16(d + pos + 5);
      if (h == 0) refuse("unsupported JPEG: height defined by a DNL marker");
      check_dimensions("JPEG", w, h, limits);
      info.width = int(w);
      info.height = int(h);
      seen_frame = true;
      progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE;
    }
    pos += len;
    if (m == 0xDA) {  // SOS: entropy-coded data follows, up to the next marker
      while (true) {
        const void* ff = std::memchr(d + pos, 0xFF, n - pos);
        if (!ff) truncated();
        pos = static_cast<const uint8_t*>(ff) - d;
        if (pos + 1 >= n) truncated();
        uint8_t next = d[pos + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF) {
          pos += next == 0xFF ? 1 : 2;  // stuffed byte, restart marker, or fill
          continue;
        }
        break;  // a real marker: back to the segment walk
      }
    }
  }
  if (!seen_frame) refuse("corrupt JPEG: no frame header");
  return info;
}

ImageInfo check_bmp(const uint8_t* d, size_t n, const DecodeLimits& limits) {
  ImageInfo info{ImageFormat::Bmp, 0, 0};
  if (n < 26) refuse("truncated BMP: header cut off");
  uint32_t offset = le32(d + 10), dib = le32(d + 14);
  int64_t w, h;
  uint32_t bpp, compression = 0;
  if (dib == 12) {
    w = le16(d + 18);
    h = le16(d + 20);
    bpp = le16(d + 24);
  } else if (dib >= 40) {
    if (n < 34) refuse("truncated BMP: header cut off");
    w = int32_t(le32(d + 18));
    h = int32_t(le32(d + 22));
    bpp = le16(d + 28);
    compression = le32(d + 30);
  } else {
    refuse("corrupt BMP: unknown header size " + std::to_string(dib));
  }
  if (h < 0) h = -h;  // top-down rows
  check_dimensions("BMP", w, h, limits);
  info.width = int(w);
  info.height = int(h);
  if (compression == 0 || compression == 3) {  // uncompressed rows: size known
    uint64_t stride = (uint64_t(w) * bpp + 31) / 32 * 4;
    uint64_t need = uint64_t(offset) + stride * uint64_t(h);
    if (need > n) {
      refuse("truncated BMP: pixel data needs " + std::to_string(need) + " bytes, the file has " +
             std::to_string(n));
    }
  }
  return info;
}

std::string hex_prefix(const uint8_t* d, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(n, 4); ++i) {
    s += i ? " " : "";
    s += digits[d[i] >> 4];
    s += digits[d[i] & 15];
  }
  return s;
}

bool looks_like_text(const uint8_t* d, size_t n) {
  size_t k = std::min<size_t>(n, 64);
  for (size_t i = 0; i < k; ++i) {
    uint8_t c = d[i];
    if (c < 9 || (c > 13 && c < 32) || c == 127) return false;
  }
  return true;
}

}  // namespace

ImageError::ImageError(std::string path, std::string reason)
    : engine::Error(path.empty() ? reason : path + ": " + reason),
      path_(std::move(path)),
      reason_(std::move(reason)) {}

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Bmp: return "BMP";
    default: return "unknown";
  }
}

ImageFormat sniff_format(const uint8_t* d, size_t n) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  if (n >= 8 && std::memcmp(d, png, 8) == 0) return ImageFormat::Png;
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return ImageFormat::Bmp;
  return ImageFormat::Unknown;
}

ImageInfo check_image(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  if (size == 0) refuse("empty file (0 bytes)");
  switch (sniff_format(data, size)) {
    case ImageFormat::Jpeg: return check_jpeg(data, size, limits);
    case ImageFormat::Png: return check_png(data, size, limits);
    case ImageFormat::Bmp: return check_bmp(data, size, limits);
    default: break;
  }
  if (looks_like_text(data, size)) refuse("not an image: the file holds text");
  refuse("not a JPEG, PNG or BMP file (starts with bytes " + hex_prefix(data, size) + ")");
}

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  ImageInfo info = check_image(data, size, limits);
  if (size > size_t(INT32_MAX)) refuse("file too large to decode");
  int w = 0, h = 0, comp = 0;
  // Four channels asked, three kept: stb's SIMD YCbCr->RGB path runs only for 4-channel output
  // (measured: JPEG decode 151 -> 105 us for 150x150), and the pixels are the same.
  std::unique_ptr<stbi_uc, void (*)(void*)> px(
      stbi_load_from_memory(data, int(size), &w, &h, &comp, 4), stbi_image_free);
  if (!px) {
    const char* why = stbi_failure_reason();
    refuse(std::string("corrupt or unsupported ") + format_name(info.format) + " data (" +
           (why ? why : "unknown") + ")");
  }
  if (w != info.width || h != info.height) {
    refuse("decoded size " + std::to_string(w) + "x" + std::to_string(h) +
           " differs from the header's " + std::to_string(info.width) + "x" +
           std::to_string(info.height));
  }
  Image img(w, h);
  const uint8_t* src = px.get();
  uint8_t* dst = img.pixels.data();
  for (size_t i = 0, n = size_t(w) * size_t(h); i < n; ++i) {
    dst[3 * i] = src[4 * i], dst[3 * i + 1] = src[4 * i + 1], dst[3 * i + 2] = src[4 * i + 2];
  }
  return img;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, const DecodeLimits& limits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw ImageError(path, std::string("cannot read: ") + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw ImageError(path, "not a regular file");
  if (st.st_size == 0) throw ImageError(path, "empty file (0 bytes)");
  if (st.st_size > limits.max_file_bytes) {
    throw ImageError(path, "file of " + std::to_string(st.st_size) + " bytes is above the limit of " +
                               std::to_string(limits.max_file_bytes));
  }
  FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) throw ImageError(path, std::string("cannot open: ") + std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t got = std::fread(bytes.data(), 1, bytes.size(), fp);
  bool err = std::ferror(fp);
  int saved = errno;
  std::fclose(fp);
  if (err) throw ImageError(path, std::string("read failed: ") + std::strerror(saved));
  bytes.resize(got);  // the file may have shrunk since stat
  if (bytes.empty()) throw ImageError(path, "empty file (0 bytes)");
  return bytes;
}

Image read_image(const std::string& path, const DecodeLimits& limits) {
  std::vector<uint8_t> bytes = read_file_bytes(path, limits);
  try {
    return decode_image(bytes.data(), bytes.size(), limits);
  } catch (const ImageError& e) {
    throw ImageError(path, e.reason());
  }
}

}  // namespace data
