// Safetensors reading, validation, writing and dtype conversion; see safetensors.h. The rules are
// those of the reference implementation (huggingface/safetensors, src/tensor.rs), checked in one
// place, parse_header, which read_file and parse share.
#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <span>

#include "engine/file_io.h"

namespace engine::safetensors {
namespace {

using json = nlohmann::json;

// The reference refuses headers above 100 MB so that a corrupt length cannot make it allocate
// gigabytes before noticing; we do the same.
constexpr uint64_t kMaxHeaderBytes = 100000000;
constexpr uint64_t kMaxBytes = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw FormatError(source + ": " + what);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string offsets_str(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

std::string quoted(const std::string& name) { return "tensor '" + name + "'"; }

// Byte count of a tensor. Zero dimensions are skipped in the overflow check so that the verdict
// does not depend on where the 0 stands in the shape; the element count must fit int64 because
// the engine indexes with int64.
uint64_t byte_count(const std::string& source, const std::string& name, DType dtype,
                    const std::vector<int64_t>& shape) {
  uint64_t n = dtype_size(dtype);
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) {
      fail(source, quoted(name) + " shape " + shape_str(shape) + " has a negative dimension");
    }
    if (d == 0) {
      empty = true;
      continue;
    }
    if (n > kMaxBytes / static_cast<uint64_t>(d)) {
      fail(source, quoted(name) + " byte count of " + dtype_name(dtype) + " x " + shape_str(shape) +
                       " overflows");
    }
    n *= static_cast<uint64_t>(d);
  }
  return empty ? 0 : n;
}

// The rest of an entry that the reader needs besides the bytes.
struct Layout {
  Entry entry;  // bytes still empty
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<Layout> tensors;  // sorted by data offsets
  std::map<std::string, std::string> metadata;
};

// Rules 1 and 2: returns the header length from the first bytes of a file of file_size bytes.
uint64_t header_length(const std::string& source, const uint8_t* prefix, uint64_t file_size) {
  if (file_size < 8) {
    fail(source, "file is " + std::to_string(file_size) +
                     " bytes, shorter than the 8-byte header length prefix");
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(prefix[i]) << (8 * i);
  if (n > kMaxHeaderBytes) {
    fail(source, "header length " + std::to_string(n) + " exceeds the cap of " +
                     std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (n > file_size - 8) {
    fail(source, "header length " + std::to_string(n) + " exceeds the file size (" +
                     std::to_string(file_size - 8) + " bytes after the length prefix)");
  }
  return n;
}

DType parse_dtype(const std::string& source, const std::string& name, const std::string& s) {
  static const std::map<std::string, DType> kByName = {
      {"F64", DType::F64}, {"F32", DType::F32},  {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32},  {"I16", DType::I16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  auto it = kByName.find(s);
  if (it == kByName.end()) fail(source, quoted(name) + " has unknown dtype '" + s + "'");
  return it->second;
}

// A non-negative JSON integer that fits int64 (nlohmann stores "-0" as a signed integer and
// integers above uint64 as floats, so both representations are looked at).
bool as_index(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= kMaxBytes;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

Layout parse_entry(const std::string& source, const std::string& name, const json& v) {
  if (name.empty()) fail(source, "tensor name is empty");
  if (!v.is_object()) fail(source, quoted(name) + " entry is not an object");
  for (const auto& [key, unused] : v.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail(source, quoted(name) + " has unknown key '" + key + "'");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) fail(source, quoted(name) + " lacks \"" + key + "\"");
  }
  Layout l;
  l.entry.name = name;
  const json& dtype = v.at("dtype");
  if (!dtype.is_string()) fail(source, quoted(name) + " dtype is not a string");
  l.entry.dtype = parse_dtype(source, name, dtype.get<std::string>());

  const json& shape = v.at("shape");
  if (!shape.is_array()) fail(source, quoted(name) + " shape is not an array");
  for (const json& d : shape) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0) {
      fail(source, quoted(name) + " shape " + shape.dump() + " has a negative dimension");
    }
    uint64_t u = 0;
    if (!as_index(d, &u)) {
      fail(source, quoted(name) +
                       " shape has a dimension that is not an integer in int64 range: " + d.dump());
    }
    l.entry.shape.push_back(static_cast<int64_t>(u));
  }

  const json& offsets = v.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !as_index(offsets[0], &l.begin) ||
      !as_index(offsets[1], &l.end)) {
    fail(source, quoted(name) + " data_offsets " + offsets.dump() +
                     " is not a pair of non-negative integers");
  }
  if (l.begin > l.end) {
    fail(source,
         quoted(name) + " data_offsets " + offsets_str(l.begin, l.end) + " end before they begin");
  }
  uint64_t need = byte_count(source, name, l.entry.dtype, l.entry.shape);
  if (l.end - l.begin != need) {
    fail(source, quoted(name) + " data_offsets " + offsets_str(l.begin, l.end) + " cover " +
                     std::to_string(l.end - l.begin) + " bytes but " + dtype_name(l.entry.dtype) +
                     " x " + shape_str(l.entry.shape) + " needs " + std::to_string(need));
  }
  return l;
}

Header parse_header(const std::string& source, const uint8_t* text, size_t n, uint64_t data_size) {
  // nlohmann keeps the last of duplicate keys silently; a second tensor of the same name would
  // then shadow the first, so keys are tracked per object while parsing.
  std::vector<std::set<std::string>> seen;
  json::parser_callback_t track_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) seen.emplace_back();
    if (event == json::parse_event_t::object_end) seen.pop_back();
    if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.back().insert(key).second) {
        if (depth == 1 && key != "__metadata__") {
          fail(source, "duplicate tensor name '" + key + "'");
        }
        fail(source, "duplicate key '" + key + "' in the header JSON");
      }
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended, which would let "{}\0<junk>" through;
  // JSON text never holds a raw NUL. An empty header comes from read_file as a null pointer, which
  // memchr must not see even with a zero count.
  if (const void* nul = n ? std::memchr(text, 0, n) : nullptr) {
    fail(source, "header is not valid UTF-8 JSON: NUL byte at header offset " +
                     std::to_string(static_cast<const uint8_t*>(nul) - text));
  }
  json h;
  try {
    h = json::parse(text, text + n, track_keys);
  } catch (const json::exception& e) {
    fail(source, std::string("header is not valid UTF-8 JSON: ") + e.what());
  }
  if (!h.is_object()) {
    fail(source, std::string("header is not a JSON object but ") + h.type_name());
  }

  Header out;
  for (const auto& [key, v] : h.items()) {
    if (key == "__metadata__") {
      if (!v.is_object()) fail(source, "__metadata__ is not an object of strings");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) fail(source, "__metadata__ value of '" + mk + "' is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(source, key, v));
  }

  for (const Layout& l : out.tensors) {
    if (l.end > data_size) {
      fail(source, quoted(l.entry.name) + " data_offsets " + offsets_str(l.begin, l.end) +
                       " reach outside the data buffer of " + std::to_string(data_size) + " bytes");
    }
  }
  // Zero-byte tensors sort before a tensor that starts where they sit; equal offsets keep the
  // name order of the JSON object, so the result is deterministic.
  std::stable_sort(out.tensors.begin(), out.tensors.end(), [](const Layout& a, const Layout& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const std::string* prev = nullptr;
  for (const Layout& l : out.tensors) {
    if (l.begin < expected) {
      fail(source, quoted(l.entry.name) + " data_offsets " + offsets_str(l.begin, l.end) +
                       " overlap tensor '" + *prev + "', which ends at " +
                       std::to_string(expected));
    }
    if (l.begin > expected) {
      fail(source, "hole of " + std::to_string(l.begin - expected) + " bytes before " +
                       quoted(l.entry.name) + " at data_offsets " + offsets_str(l.begin, l.end) +
                       ": the previous tensor ends at " + std::to_string(expected));
    }
    expected = l.end;
    prev = &l.entry.name;
  }
  if (expected != data_size) {
    fail(source, "data buffer is " + std::to_string(data_size) +
                     " bytes but the tensors account for " + std::to_string(expected) + " (" +
                     std::to_string(data_size - expected) + " trailing bytes)");
  }
  return out;
}

// The 8-byte length and the space-padded JSON header of f; validates f as the reader would. The
// entries' bytes are `views` where given (one per entry), else their own.
std::string encode_header(const std::string& dest, const File& f,
                          const std::vector<std::span<const uint8_t>>* views = nullptr) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!f.metadata.empty()) h["__metadata__"] = f.metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  if (views && views->size() != f.entries.size())
    fail(dest, std::to_string(views->size()) + " byte views for " +
                   std::to_string(f.entries.size()) + " tensors");
  for (size_t i = 0; i < f.entries.size(); ++i) {
    const Entry& e = f.entries[i];
    const size_t have = views ? (*views)[i].size() : e.bytes.size();
    if (e.name.empty()) fail(dest, "tensor name is empty");
    if (e.name == "__metadata__") fail(dest, "tensor name '__metadata__' is reserved");
    if (!names.insert(e.name).second) fail(dest, "duplicate tensor name '" + e.name + "'");
    uint64_t need = byte_count(dest, e.name, e.dtype, e.shape);
    if (have != need) {
      fail(dest, quoted(e.name) + " has " + std::to_string(have) + " bytes but " +
                     dtype_name(e.dtype) + " x " + shape_str(e.shape) + " needs " +
                     std::to_string(need));
    }
    h[e.name] = {{"dtype", dtype_name(e.dtype)},
                 {"shape", e.shape},
                 {"data_offsets", {offset, offset + need}}};
    offset += need;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    fail(dest, std::string("a tensor name or metadata string is not valid UTF-8: ") + e.what());
  }
  // Padding to 8 bytes keeps the data buffer aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xff);
  return out + text;
}

std::string errno_str() { return std::strerror(errno); }

template <typename U>
U load_le(const uint8_t* p) {
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>(v | (static_cast<U>(p[i]) << (8 * i)));
  return v;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf, or nan with its payload kept
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {
    // A half subnormal is man * 2^-24, a normal number in float: shift the leading 1 into the
    // implicit bit and lower the exponent by the shift.
    int shift = 0;
    while (!(man & 0x400)) {
      man <<= 1;
      ++shift;
    }
    bits = sign | (static_cast<uint32_t>(127 - 14 - shift) << 23) | ((man & 0x3ff) << 13);
  }
  return std::bit_cast<float>(bits);
}

float f64_to_f32(double d) {
  // Converting a double beyond float's range is undefined behaviour in C++; IEEE rounding sends
  // anything at or above FLT_MAX + half an ulp to infinity.
  if (std::isfinite(d) && std::fabs(d) >= 0x1.ffffffp127) {
    constexpr float kInf = std::numeric_limits<float>::infinity();
    return d > 0 ? kInf : -kInf;
  }
  return static_cast<float>(d);
}

size_t checked_count(const char* op, const Entry& e) {
  uint64_t need = byte_count(op, e.name, e.dtype, e.shape);
  if (e.bytes.size() != need) {
    fail(op, quoted(e.name) + " has " + std::to_string(e.bytes.size()) + " bytes but " +
                 dtype_name(e.dtype) + " x " + shape_str(e.shape) + " needs " +
                 std::to_string(need));
  }
  return e.bytes.size() / dtype_size(e.dtype);
}

}  // namespace

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  throw FormatError("safetensors: invalid DType value " + std::to_string(static_cast<int>(t)));
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  throw FormatError("safetensors: invalid DType value " + std::to_string(static_cast<int>(t)));
}

const Entry* File::find(const std::string& name) const {
  for (const Entry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

File parse(const std::string& source_name, const uint8_t* data, size_t size) {
  uint64_t n = header_length(source_name, data, size);
  Header h = parse_header(source_name, data + 8, n, size - 8 - n);
  const uint8_t* buffer = data + 8 + n;
  File f;
  f.metadata = std::move(h.metadata);
  for (Layout& l : h.tensors) {
    l.entry.bytes.assign(buffer + l.begin, buffer + l.end);
    f.entries.push_back(std::move(l.entry));
  }
  return f;
}

File read_file(const std::string& path) {
  // Read piecewise rather than slurping the file so that a checkpoint is held in memory once.
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading: " + errno_str());
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot determine the file size: " + ec.message());
  auto read = [&](void* dst, uint64_t count) {
    if (count && !in.read(static_cast<char*>(dst), static_cast<std::streamsize>(count))) {
      fail(path, "read failed (file truncated while reading?)");
    }
  };
  uint8_t prefix[8] = {};
  read(prefix, std::min<uint64_t>(size, 8));
  uint64_t n = header_length(path, prefix, size);
  std::vector<uint8_t> text(n);
  read(text.data(), n);
  Header h = parse_header(path, text.data(), n, size - 8 - n);
  File f;
  f.metadata = std::move(h.metadata);
  // Tensors are contiguous and sorted, so reading them in order walks the data buffer once.
  for (Layout& l : h.tensors) {
    l.entry.bytes.resize(l.end - l.begin);
    read(l.entry.bytes.data(), l.end - l.begin);
    f.entries.push_back(std::move(l.entry));
  }
  return f;
}

std::vector<uint8_t> serialize(const File& f) {
  std::string header = encode_header("serialize", f);
  std::vector<uint8_t> out(header.begin(), header.end());
  for (const Entry& e : f.entries) out.insert(out.end(), e.bytes.begin(), e.bytes.end());
  return out;
}

void write_file(const std::string& path, const File& f) {
  std::vector<std::span<const uint8_t>> views;
  for (const Entry& e : f.entries) views.emplace_back(e.bytes);
  write_file(path, f, views);
}

void write_file(const std::string& path, const File& f,
                const std::vector<std::span<const uint8_t>>& views) {
  std::string header = encode_header(path, f, &views);  // before touching the disk
  std::vector<std::span<const uint8_t>> parts;
  parts.emplace_back(reinterpret_cast<const uint8_t*>(header.data()), header.size());
  parts.insert(parts.end(), views.begin(), views.end());
  try {
    write_file_atomic(path, parts);
  } catch (const Error& e) {
    throw FormatError(e.what());  // one exception type for callers of this module
  }
}

std::vector<float> to_float32(const Entry& e) {
  size_t n = checked_count("to_float32", e);
  std::vector<float> out(n);
  const uint8_t* p = e.bytes.data();
  switch (e.dtype) {
    case DType::F32:
      for (size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(load_le<uint32_t>(p + 4 * i));
      return out;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        out[i] = f64_to_f32(std::bit_cast<double>(load_le<uint64_t>(p + 8 * i)));
      }
      return out;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_le<uint16_t>(p + 2 * i));
      return out;
    case DType::BF16:
      // bfloat16 is the top half of a float32, so widening is exact.
      for (size_t i = 0; i < n; ++i) {
        out[i] = std::bit_cast<float>(static_cast<uint32_t>(load_le<uint16_t>(p + 2 * i)) << 16);
      }
      return out;
    default:
      fail("to_float32", quoted(e.name) + " has dtype " + dtype_name(e.dtype) +
                             "; only F32, F64, F16 and BF16 convert to float32");
  }
}

std::vector<int64_t> to_int64(const Entry& e) {
  size_t n = checked_count("to_int64", e);
  std::vector<int64_t> out(n);
  const uint8_t* p = e.bytes.data();
  // Unsigned-to-signed conversion is two's complement since C++20, which is what the file holds.
  switch (e.dtype) {
    case DType::I64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<int64_t>(load_le<uint64_t>(p + 8 * i));
      return out;
    case DType::I32:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(load_le<uint32_t>(p + 4 * i));
      return out;
    case DType::I16:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(load_le<uint16_t>(p + 2 * i));
      return out;
    case DType::I8:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(p[i]);
      return out;
    case DType::U8:
      for (size_t i = 0; i < n; ++i) out[i] = p[i];
      return out;
    case DType::BOOL:
      for (size_t i = 0; i < n; ++i) out[i] = p[i] != 0;
      return out;
    default:
      fail("to_int64", quoted(e.name) + " has dtype " + dtype_name(e.dtype) +
                           "; only I64, I32, I16, I8, U8 and BOOL convert to int64");
  }
}

}  // namespace engine::safetensors
