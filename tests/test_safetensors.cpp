// Tests of engine/safetensors: round trips, the writer's layout, one malformed file per rule of
// the format (each built byte by byte here), dtype conversions and the atomic write.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "engine/safetensors.h"

namespace st = engine::safetensors;
namespace fs = std::filesystem;

namespace {

const char kName[] = "bad.safetensors";

void put_le(std::vector<uint8_t>* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A file with the given header text (unpadded, as any writer may produce) and a data buffer of
// data_bytes bytes.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out;
  put_le(&out, header.size(), 8);
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i * 7 + 1));
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    st::parse(kName, bytes.data(), bytes.size());
  } catch (const st::FormatError& e) {
    return e.what();
  }
  return "<no error>";
}

// Parsing must fail with a message that names the file and contains every word in `words`.
void expect_rejected(const std::vector<uint8_t>& bytes, const std::vector<std::string>& words) {
  std::string msg = parse_error(bytes);
  EXPECT_EQ(msg.rfind(std::string(kName) + ": ", 0), 0u) << msg;
  for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << msg;
}

void expect_rejected(const std::string& header, size_t data_bytes,
                     const std::vector<std::string>& words) {
  SCOPED_TRACE(header);
  expect_rejected(make_file(header, data_bytes), words);
}

st::Entry make_entry(const std::string& name, st::DType dtype, std::vector<int64_t> shape) {
  st::Entry e{name, dtype, std::move(shape), {}};
  int64_t n = 1;
  for (int64_t d : e.shape) n *= d;
  e.bytes.resize(static_cast<size_t>(n) * st::dtype_size(dtype));
  for (size_t i = 0; i < e.bytes.size(); ++i) e.bytes[i] = static_cast<uint8_t>(i * 31 + 5);
  return e;
}

template <typename T>
st::Entry entry_of(const std::string& name, st::DType dtype, const std::vector<T>& values,
                   std::vector<int64_t> shape) {
  st::Entry e{name, dtype, std::move(shape), {}};
  for (T v : values) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));  // the test machine is little-endian, as is the format
    put_le(&e.bytes, bits, sizeof(T));
  }
  return e;
}

void expect_same(const st::File& a, const st::File& b) {
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    SCOPED_TRACE(a.entries[i].name);
    EXPECT_EQ(a.entries[i].name, b.entries[i].name);
    EXPECT_EQ(a.entries[i].dtype, b.entries[i].dtype);
    EXPECT_EQ(a.entries[i].shape, b.entries[i].shape);
    EXPECT_EQ(a.entries[i].bytes, b.entries[i].bytes);
  }
  EXPECT_EQ(a.metadata, b.metadata);
}

// A fresh directory per test, removed afterwards.
class SafetensorsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "st_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& p : fs::directory_iterator(dir_)) names.push_back(p.path().filename());
    return names;
  }
  fs::path dir_;
};

st::File sample_file() {
  st::File f;
  f.entries.push_back(make_entry("conv1.weight", st::DType::F32, {4, 3, 3, 3}));
  f.entries.push_back(make_entry("half", st::DType::F16, {5}));
  f.entries.push_back(make_entry("brain", st::DType::BF16, {2, 3}));
  f.entries.push_back(make_entry("scalar", st::DType::F64, {}));
  f.entries.push_back(make_entry("empty", st::DType::F32, {0, 3}));
  f.entries.push_back(make_entry("bn.num_batches_tracked", st::DType::I64, {}));
  f.entries.push_back(make_entry("i32", st::DType::I32, {2, 2}));
  f.entries.push_back(make_entry("i16", st::DType::I16, {3}));
  f.entries.push_back(make_entry("i8", st::DType::I8, {7}));
  f.entries.push_back(make_entry("pixels", st::DType::U8, {2, 2, 3}));
  f.entries.push_back(make_entry("mask", st::DType::BOOL, {3}));
  f.entries.push_back(make_entry("empty_at_end", st::DType::I64, {3, 0}));
  return f;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips and the writer's layout

TEST(SafetensorsRoundTrip, AllDtypesScalarAndZeroElement) {
  st::File f = sample_file();
  std::vector<uint8_t> bytes = st::serialize(f);
  st::File g = st::parse(kName, bytes.data(), bytes.size());
  expect_same(f, g);
  ASSERT_NE(g.find("scalar"), nullptr);
  EXPECT_TRUE(g.find("scalar")->shape.empty());
  EXPECT_EQ(g.find("scalar")->bytes.size(), 8u);
  EXPECT_TRUE(g.find("empty")->bytes.empty());
  EXPECT_EQ(g.find("absent"), nullptr);
  EXPECT_EQ(st::serialize(g), bytes);
}

TEST(SafetensorsRoundTrip, EmptyFile) {
  st::File f;
  std::vector<uint8_t> bytes = st::serialize(f);
  EXPECT_EQ(bytes, make_file("{}      ", 0));
  st::File g = st::parse(kName, bytes.data(), bytes.size());
  EXPECT_TRUE(g.entries.empty());
  EXPECT_TRUE(g.metadata.empty());
}

TEST(SafetensorsRoundTrip, Metadata) {
  st::File f;
  f.entries.push_back(make_entry("w", st::DType::F32, {2}));
  f.metadata = {{"format", "pt"}, {"epoch", "12"}, {"note", "ünïcode \"quoted\""}};
  std::vector<uint8_t> bytes = st::serialize(f);
  std::string text(bytes.begin() + 8, bytes.end());
  EXPECT_NE(text.find("\"__metadata__\""), std::string::npos);
  expect_same(f, st::parse(kName, bytes.data(), bytes.size()));
}

TEST(SafetensorsRoundTrip, NoMetadataKeyWhenEmpty) {
  st::File f;
  f.entries.push_back(make_entry("w", st::DType::F32, {2}));
  std::vector<uint8_t> bytes = st::serialize(f);
  std::string text(bytes.begin() + 8, bytes.end());
  EXPECT_EQ(text.find("__metadata__"), std::string::npos);
}

TEST(SafetensorsRoundTrip, EntriesComeBackInOffsetOrder) {
  // Header keys are stored alphabetically by the JSON object; the reader must reorder by offset.
  std::string header = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},)"
                       R"("c":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})";
  std::vector<uint8_t> bytes = make_file(header, 3);
  st::File f = st::parse(kName, bytes.data(), bytes.size());
  ASSERT_EQ(f.entries.size(), 3u);
  EXPECT_EQ(f.entries[0].name, "b");
  EXPECT_EQ(f.entries[1].name, "c");
  EXPECT_EQ(f.entries[2].name, "a");
  EXPECT_EQ(f.entries[2].bytes, std::vector<uint8_t>{bytes[8 + header.size() + 2]});
}

TEST(SafetensorsLayout, HeaderIsTheReferenceTextPaddedToEightBytes) {
  st::File f;
  f.entries.push_back(entry_of<float>("w", st::DType::F32, {1.0f, 2.0f}, {2}));
  std::vector<uint8_t> bytes = st::serialize(f);
  std::string json = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  std::vector<uint8_t> expected = make_file(padded, 0);
  expected.insert(expected.end(), f.entries[0].bytes.begin(), f.entries[0].bytes.end());
  EXPECT_EQ(bytes, expected);
}

TEST(SafetensorsLayout, PaddingForEveryResidue) {
  for (size_t len = 1; len <= 16; ++len) {
    st::File f;
    f.entries.push_back(make_entry(std::string(len, 'x'), st::DType::U8, {3}));
    std::vector<uint8_t> bytes = st::serialize(f);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    EXPECT_EQ(n % 8, 0u) << len;
    EXPECT_EQ(bytes.size(), 8 + n + 3);
    std::string text(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(n));
    size_t close = text.rfind('}');
    EXPECT_EQ(text.find_first_not_of(' ', close + 1), std::string::npos) << text;
    EXPECT_LT(text.size() - close - 1, 8u);
    expect_same(f, st::parse(kName, bytes.data(), bytes.size()));
  }
}

TEST(SafetensorsLayout, WriterRejectsInvalidFiles) {
  auto message = [](const st::File& f) -> std::string {
    try {
      st::serialize(f);
    } catch (const st::FormatError& e) {
      return e.what();
    }
    return "<no error>";
  };
  st::File f;
  f.entries.push_back(make_entry("w", st::DType::F32, {2, 2}));
  f.entries[0].bytes.resize(12);
  EXPECT_NE(message(f).find("'w' has 12 bytes but F32 x [2, 2] needs 16"), std::string::npos);
  f.entries[0] = make_entry("", st::DType::F32, {2});
  EXPECT_NE(message(f).find("name is empty"), std::string::npos);
  f.entries[0] = make_entry("__metadata__", st::DType::F32, {2});
  EXPECT_NE(message(f).find("reserved"), std::string::npos);
  f.entries[0] = make_entry("w", st::DType::F32, {2});
  f.entries.push_back(make_entry("w", st::DType::U8, {2}));
  EXPECT_NE(message(f).find("duplicate tensor name 'w'"), std::string::npos);
  f.entries.pop_back();
  f.entries[0].shape = {-1};
  EXPECT_NE(message(f).find("negative dimension"), std::string::npos);
  f.entries[0] = make_entry("\xff", st::DType::F32, {2});
  EXPECT_NE(message(f).find("not valid UTF-8"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// One malformed file per rule

TEST(SafetensorsRules, R1FileShorterThanEightBytes) {
  expect_rejected(std::vector<uint8_t>{1, 0, 0, 0, 0}, {"5 bytes", "shorter than the 8-byte"});
  expect_rejected(std::vector<uint8_t>{}, {"0 bytes", "shorter"});
}

TEST(SafetensorsRules, R2HeaderLengthBeyondCapOrFile) {
  std::vector<uint8_t> capped;
  put_le(&capped, 100000001, 8);
  capped.resize(64, ' ');
  expect_rejected(capped, {"header length 100000001", "cap"});
  std::vector<uint8_t> huge;
  put_le(&huge, ~uint64_t{0}, 8);
  expect_rejected(huge, {"cap"});
  std::vector<uint8_t> longer = make_file("{}", 0);
  longer[0] = 3;
  expect_rejected(longer, {"header length 3", "exceeds the file size"});
}

TEST(SafetensorsRules, R3HeaderNotJsonObject) {
  expect_rejected("{\"w\": ", 0, {"not valid UTF-8 JSON"});
  expect_rejected("{\"w\xff\": {}}", 0, {"not valid UTF-8 JSON"});
  expect_rejected("{} // comment", 0, {"not valid UTF-8 JSON"});
  expect_rejected(std::string("{}\0\0", 4), 0, {"not valid UTF-8 JSON", "NUL byte"});
  expect_rejected(std::string("{}\0x", 4), 0, {"NUL byte at header offset 2"});
  expect_rejected("        ", 0, {"not valid UTF-8 JSON"});
  expect_rejected("[1, 2]  ", 0, {"not a JSON object", "array"});
  expect_rejected("null", 0, {"not a JSON object"});
}

TEST(SafetensorsRules, R4MalformedEntry) {
  expect_rejected(R"({"w": 3})", 0, {"tensor 'w'", "not an object"});
  expect_rejected(R"({"w": {"shape": [], "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "lacks \"dtype\""});
  expect_rejected(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "lacks \"shape\""});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": []}})", 4,
                  {"tensor 'w'", "lacks \"data_offsets\""});
  expect_rejected(R"({"w": {"dtype": 1, "shape": [], "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "dtype is not a string"});
  expect_rejected(R"({"w": {"dtype": "F8", "shape": [], "data_offsets": [0, 1]}})", 1,
                  {"tensor 'w'", "unknown dtype 'F8'"});
  expect_rejected(R"({"w": {"dtype": "f32", "shape": [], "data_offsets": [0, 4]}})", 4,
                  {"unknown dtype 'f32'"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "shape is not an array"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "not an integer"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "not an integer"});
  expect_rejected(
      R"({"w": {"dtype": "F32", "shape": [9223372036854775808], "data_offsets": [0, 4]}})", 4,
      {"tensor 'w'", "int64 range"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 4]}})", 4,
                  {"tensor 'w'", "[2,-1]", "negative dimension"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [0]}})", 4,
                  {"tensor 'w'", "data_offsets", "pair of non-negative integers"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [0, 4, 8]}})", 4,
                  {"pair of non-negative integers"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": {"a": 0}}})", 4,
                  {"pair of non-negative integers"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [-4, 0]}})", 4,
                  {"tensor 'w'", "pair of non-negative integers"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [0, 4.0]}})", 4,
                  {"pair of non-negative integers"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [8, 4]}})", 8,
                  {"tensor 'w'", "[8, 4]", "end before they begin"});
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "strides": [1]}})",
                  4, {"tensor 'w'", "unknown key 'strides'"});
}

TEST(SafetensorsRules, R5MetadataNotStringMap) {
  std::string w = R"("w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]})";
  expect_rejected("{\"__metadata__\": [\"a\"], " + w + "}", 1, {"__metadata__ is not an object"});
  expect_rejected("{\"__metadata__\": \"x\", " + w + "}", 1, {"__metadata__ is not an object"});
  expect_rejected("{\"__metadata__\": {\"epoch\": 3}, " + w + "}", 1,
                  {"__metadata__ value of 'epoch' is not a string"});
  expect_rejected("{\"__metadata__\": {\"a\": {\"b\": \"c\"}}, " + w + "}", 1,
                  {"value of 'a' is not a string"});
  // Well-formed metadata is accepted.
  std::vector<uint8_t> ok = make_file("{\"__metadata__\": {\"format\": \"pt\"}, " + w + "}", 1);
  EXPECT_EQ(st::parse(kName, ok.data(), ok.size()).metadata.at("format"), "pt");
}

TEST(SafetensorsRules, R6ByteCountMatchesDtypeAndShape) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 12,
                  {"tensor 'w' data_offsets [0, 12] cover 12 bytes but F32 x [2, 2] needs 16"});
  expect_rejected(R"({"w": {"dtype": "BF16", "shape": [], "data_offsets": [0, 4]}})", 4,
                  {"cover 4 bytes but BF16 x [] needs 2"});
  expect_rejected(R"({"w": {"dtype": "U8", "shape": [0, 5], "data_offsets": [0, 1]}})", 1,
                  {"needs 0"});
  // 2^31 * 2^31 * 8 bytes overflows int64 while each factor is fine.
  expect_rejected(
      R"({"w": {"dtype": "F64", "shape": [2147483648, 2147483648], "data_offsets": [0, 8]}})", 8,
      {"tensor 'w'", "F64 x [2147483648, 2147483648] overflows"});
  expect_rejected(
      R"({"w": {"dtype": "U8", "shape": [4294967296, 4294967296, 0], "data_offsets": [0, 0]}})", 0,
      {"overflows"});
  // A zero anywhere makes the tensor empty, wherever it stands, as long as the rest fits.
  std::vector<uint8_t> ok = make_file(
      R"({"w": {"dtype": "U8", "shape": [0, 4294967296, 1024], "data_offsets": [0, 0]}})", 0);
  EXPECT_TRUE(st::parse(kName, ok.data(), ok.size()).entries[0].bytes.empty());
}

TEST(SafetensorsRules, R7OffsetsInsideDataBuffer) {
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                  R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}})",
                  16, {"tensor 'b'", "[16, 32]", "outside the data buffer of 16 bytes"});
  expect_rejected(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [5, 5]}})", 0,
                  {"tensor 'a'", "outside the data buffer"});
}

TEST(SafetensorsRules, R8NoOverlapsNoHoles) {
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                  R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                  24, {"tensor 'b'", "overlap tensor 'a'", "ends at 16"});
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                  R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                  16, {"overlap"});
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                  R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [20, 36]}})",
                  36, {"hole of 4 bytes before tensor 'b'", "ends at 16"});
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [4, 20]}})", 20,
                  {"hole of 4 bytes before tensor 'a'", "ends at 0"});
}

TEST(SafetensorsRules, R9NoTrailingBytes) {
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 20,
                  {"data buffer is 20 bytes", "account for 16", "4 trailing bytes"});
  expect_rejected("{}", 1, {"data buffer is 1 bytes", "1 trailing bytes"});
}

TEST(SafetensorsRules, R10NoDuplicateNames) {
  expect_rejected(R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},)"
                  R"( "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                  2, {"duplicate tensor name 'w'"});
  expect_rejected(R"({"w": {"dtype": "U8", "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})",
                  1, {"duplicate key 'dtype'"});
  expect_rejected(R"({"__metadata__": {}, "__metadata__": {}})", 0,
                  {"duplicate key '__metadata__'"});
  expect_rejected(R"({"__metadata__": {"a": "1", "a": "2"}})", 0, {"duplicate key 'a'"});
}

TEST(SafetensorsRules, R11EmptyTensorName) {
  expect_rejected(R"({"": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})", 1,
                  {"tensor name is empty"});
}

TEST(SafetensorsRules, LegalEdgeCasesAreAccepted) {
  // Unpadded header, trailing whitespace padding, zero-byte tensors at the start and the end.
  std::vector<uint8_t> bytes =
      make_file(R"({"z0":{"dtype":"F16","shape":[0],"data_offsets":[0,0]},)"
                R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                R"("z1":{"dtype":"BOOL","shape":[2,0],"data_offsets":[4,4]}}   )",
                4);
  st::File f = st::parse(kName, bytes.data(), bytes.size());
  ASSERT_EQ(f.entries.size(), 3u);
  EXPECT_EQ(f.entries[0].name, "z0");
  EXPECT_EQ(f.entries[1].name, "s");
  EXPECT_EQ(f.entries[2].name, "z1");
  EXPECT_EQ(f.entries[1].bytes.size(), 4u);
}

TEST(SafetensorsRules, CorruptedFilesFailCleanly) {
  // Every single-byte corruption and truncation of a valid file either parses to something that
  // re-serializes to the same bytes or throws FormatError; nothing else (run under ASan/UBSan).
  st::File f;
  f.entries.push_back(make_entry("w", st::DType::F32, {2, 2}));
  f.entries.push_back(make_entry("b", st::DType::F16, {3}));
  f.metadata = {{"k", "v"}};
  const std::vector<uint8_t> good = st::serialize(f);
  const uint8_t values[] = {0, '"', '-', '1', '9', ']', '}', ',', ':', ' ', 0x80, 0xff};
  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (uint8_t v : values) {
      std::vector<uint8_t> bad = good;
      bad[pos] = v;
      try {
        st::File g = st::parse(kName, bad.data(), bad.size());
        EXPECT_TRUE(st::serialize(g) == bad) << "byte " << pos << " set to " << int{v};
      } catch (const st::FormatError&) {
      }
    }
    try {
      st::parse(kName, good.data(), pos);
      ADD_FAILURE() << "truncation to " << pos << " bytes accepted";
    } catch (const st::FormatError&) {
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Conversions

namespace {

// Independent reference for a half: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m for subnormals.
float f16_reference(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float mag;
  if (exp == 0x1f) {
    mag = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man), -24);
  } else {
    mag = std::ldexp(static_cast<float>(1024 + man), exp - 25);
  }
  return sign ? -mag : mag;
}

std::vector<float> f16_convert(const std::vector<uint16_t>& bits) {
  return st::to_float32(
      entry_of<uint16_t>("h", st::DType::F16, bits, {static_cast<int64_t>(bits.size())}));
}

std::string convert_error(const st::Entry& e, bool to_float) {
  try {
    if (to_float) {
      st::to_float32(e);
    } else {
      st::to_int64(e);
    }
  } catch (const st::FormatError& err) {
    return err.what();
  }
  return "<no error>";
}

}  // namespace

TEST(SafetensorsConvert, F16KnownValues) {
  std::vector<float> v = f16_convert({0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001, 0x03FF, 0x8001,
                                      0x3555, 0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01});
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 65504.0f);
  EXPECT_EQ(v[3], 0x1p-14f);         // smallest normal
  EXPECT_EQ(v[4], 0x1p-24f);         // smallest subnormal
  EXPECT_EQ(v[5], 1023 * 0x1p-24f);  // largest subnormal
  EXPECT_EQ(v[6], -0x1p-24f);
  EXPECT_EQ(v[7], 0.333251953125f);
  EXPECT_EQ(std::bit_cast<uint32_t>(v[8]), 0u);
  EXPECT_EQ(std::bit_cast<uint32_t>(v[9]), 0x80000000u);  // negative zero keeps its sign
  EXPECT_EQ(v[10], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[11], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(v[12]));
  EXPECT_TRUE(std::isnan(v[13]));  // a signalling-pattern nan must not become infinity
}

TEST(SafetensorsConvert, F16AllBitPatternsExact) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> v = f16_convert(all);
  for (size_t i = 0; i < all.size(); ++i) {
    float ref = f16_reference(all[i]);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(v[i])) << i;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(v[i]), std::bit_cast<uint32_t>(ref)) << i;
    }
  }
}

TEST(SafetensorsConvert, BF16KnownValues) {
  std::vector<float> v = st::to_float32(entry_of<uint16_t>(
      "b", st::DType::BF16, {0x3F80, 0xC000, 0x4049, 0x0001, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0}, {8}));
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 3.140625f);
  EXPECT_EQ(v[3], 0x1p-133f);  // smallest subnormal
  EXPECT_EQ(v[4], 0x1.fep127f);
  EXPECT_EQ(v[5], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[6], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(v[7]));
}

TEST(SafetensorsConvert, F64AndF32) {
  std::vector<float> v = st::to_float32(entry_of<double>(
      "d", st::DType::F64,
      {0.1, -1.5, 1e300, -1e300, 1e-50, 0x1.fffffefp127, 0x1.ffffffp127, -0x1.ffffffp127}, {8}));
  EXPECT_EQ(v[0], 0.1f);
  EXPECT_EQ(v[1], -1.5f);
  EXPECT_EQ(v[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(v[4], 0.0f);
  EXPECT_EQ(v[5], std::numeric_limits<float>::max());       // just below the halfway point
  EXPECT_EQ(v[6], std::numeric_limits<float>::infinity());  // halfway rounds to even: inf
  EXPECT_EQ(v[7], -std::numeric_limits<float>::infinity());
  std::vector<float> f = st::to_float32(entry_of<float>("f", st::DType::F32, {1.25f, -0.0f}, {2}));
  EXPECT_EQ(f[0], 1.25f);
  EXPECT_TRUE(std::signbit(f[1]));
  EXPECT_TRUE(st::to_float32(make_entry("z", st::DType::F16, {0})).empty());
}

TEST(SafetensorsConvert, ToInt64) {
  EXPECT_EQ(st::to_int64(entry_of<int64_t>("a", st::DType::I64, {-5, int64_t{1} << 40}, {2})),
            (std::vector<int64_t>{-5, int64_t{1} << 40}));
  EXPECT_EQ(st::to_int64(entry_of<int32_t>("b", st::DType::I32, {-7, 2147483647}, {2})),
            (std::vector<int64_t>{-7, 2147483647}));
  EXPECT_EQ(st::to_int64(entry_of<uint8_t>("c", st::DType::U8, {0, 200, 255}, {3})),
            (std::vector<int64_t>{0, 200, 255}));
  EXPECT_EQ(st::to_int64(entry_of<int8_t>("d", st::DType::I8, {-128, 127}, {2})),
            (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(st::to_int64(entry_of<int16_t>("e", st::DType::I16, {-300, 300}, {2})),
            (std::vector<int64_t>{-300, 300}));
  EXPECT_EQ(st::to_int64(entry_of<uint8_t>("f", st::DType::BOOL, {0, 1, 2}, {3})),
            (std::vector<int64_t>{0, 1, 1}));
}

TEST(SafetensorsConvert, UnsupportedDtypeNamesEntryAndDtype) {
  std::string msg = convert_error(make_entry("labels", st::DType::I32, {3}), true);
  EXPECT_NE(msg.find("tensor 'labels'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dtype I32"), std::string::npos) << msg;
  msg = convert_error(make_entry("w", st::DType::BF16, {3}), false);
  EXPECT_NE(msg.find("tensor 'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dtype BF16"), std::string::npos) << msg;
  st::Entry bad = make_entry("w", st::DType::F32, {3});
  bad.bytes.pop_back();
  msg = convert_error(bad, true);
  EXPECT_NE(msg.find("has 11 bytes but F32 x [3] needs 12"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Files on disk

TEST_F(SafetensorsFileTest, WriteReadRoundTrip) {
  st::File f = sample_file();
  f.metadata = {{"format", "pt"}};
  std::string path = (dir_ / "model.safetensors").string();
  st::write_file(path, f);
  expect_same(f, st::read_file(path));
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(on_disk, st::serialize(f));
}

TEST_F(SafetensorsFileTest, AtomicWriteOverwritesAndLeavesNoTempFile) {
  std::string path = (dir_ / "ckpt.safetensors").string();
  {
    std::ofstream old(path, std::ios::binary);
    old << std::string(4096, 'x');  // longer than the new file: must not survive as a tail
  }
  st::File f;
  f.entries.push_back(make_entry("w", st::DType::F32, {3}));
  st::write_file(path, f);
  EXPECT_EQ(listing(), std::vector<std::string>{"ckpt.safetensors"});
  expect_same(f, st::read_file(path));
  f.entries[0] = make_entry("v", st::DType::U8, {1});
  st::write_file(path, f);
  EXPECT_EQ(listing(), std::vector<std::string>{"ckpt.safetensors"});
  expect_same(f, st::read_file(path));
}

TEST_F(SafetensorsFileTest, InvalidFileIsNotWritten) {
  std::string path = (dir_ / "bad.safetensors").string();
  st::File f;
  f.entries.push_back(make_entry("", st::DType::F32, {1}));
  EXPECT_THROW(st::write_file(path, f), st::FormatError);
  EXPECT_TRUE(listing().empty());
}

TEST_F(SafetensorsFileTest, WriteIntoMissingDirectoryNamesThePath) {
  std::string path = (dir_ / "no_such_dir" / "m.safetensors").string();
  try {
    st::write_file(path, st::File{});
    FAIL() << "no error";
  } catch (const st::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(listing().empty());
}

TEST_F(SafetensorsFileTest, ReadErrorsNameThePath) {
  std::string missing = (dir_ / "missing.safetensors").string();
  try {
    st::read_file(missing);
    FAIL() << "no error";
  } catch (const st::FormatError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing + ": cannot open", 0), 0u) << e.what();
  }
  std::string path = (dir_ / "model.safetensors").string();
  std::vector<uint8_t> bytes =
      make_file(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 12);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  try {
    st::read_file(path);
    FAIL() << "no error";
  } catch (const st::FormatError& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ": tensor 'w' data_offsets [0, 12] cover 12 bytes but F32 x [2, 2] needs 16");
  }
  std::vector<uint8_t> short_file = {1, 2, 3};
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(short_file.data()), 3);
  }
  EXPECT_THROW(st::read_file(path), st::FormatError);
}
