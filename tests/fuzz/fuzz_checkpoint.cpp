// libFuzzer target for what users hand the tools besides images: weights files and checkpoints.
// Each input goes through
//   1. engine::safetensors::parse in memory: what parses must serialize and parse back to the
//      same entries and metadata, and every entry must convert as its dtype allows;
//   2. the same bytes as a file through read_file (the piecewise reader the loaders use), which
//      must agree with parse;
//   3. app::load_weights, what predict, evaluate and train's checkpoints go through: metadata
//      checks, building the model the metadata names, strict load_state_dict. A file that loads
//      must save and load back to the same metadata and state.
// Built by -DENGINE_FUZZ=ON with clang, always with AddressSanitizer and
// UndefinedBehaviorSanitizer, and run for a bounded time by the test command (scripts/fuzz.sh). The
// only exception a bad file may raise is engine::Error (FormatError is one); anything else
// escaping, a crash, a leak, a sanitizer report or an allocation beyond the run's memory limit
// fails.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "engine/safetensors.h"
#include "tools/lib/model_io.h"

namespace st = engine::safetensors;
namespace fs = std::filesystem;

namespace {

// One scratch directory per process (under TMPDIR; scripts/fuzz.sh points that into the build).
const fs::path& scratch() {
  static const fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "fuzz_checkpoint_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) __builtin_trap();
    std::atexit([] { fs::remove_all(scratch()); });
    return fs::path(tmpl);
  }();
  return dir;
}

void write_bytes(const std::string& path, const uint8_t* bytes, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(bytes, 1, size, f) != size) || std::fclose(f) != 0) {
    __builtin_trap();  // the scratch directory, not the input, is at fault
  }
}

bool same_file(const st::File& a, const st::File& b) {
  if (a.metadata != b.metadata || a.entries.size() != b.entries.size()) return false;
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const st::Entry &x = a.entries[i], &y = b.entries[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) {
      return false;
    }
  }
  return true;
}

std::optional<st::File> parse_or_refuse(const uint8_t* bytes, size_t size) {
  try {
    return st::parse("input", bytes, size);
  } catch (const st::FormatError&) {
    return std::nullopt;
  }
}

// Whatever parses is a valid file: it writes back, reads back the same, and converts.
void check_parsed(const st::File& f) {
  std::vector<uint8_t> again = st::serialize(f);
  if (!same_file(f, st::parse("reserialized", again.data(), again.size()))) __builtin_trap();
  for (const st::Entry& e : f.entries) {
    switch (e.dtype) {
      case st::DType::F64:
      case st::DType::F32:
      case st::DType::F16:
      case st::DType::BF16:
        if (st::to_float32(e).size() * st::dtype_size(e.dtype) != e.bytes.size()) __builtin_trap();
        break;
      default:
        if (st::to_int64(e).size() * st::dtype_size(e.dtype) != e.bytes.size()) __builtin_trap();
    }
  }
}

// read_file must reach the same verdict and the same contents as parse.
void check_reader_agrees(const std::string& path, const std::optional<st::File>& parsed) {
  std::optional<st::File> read;
  try {
    read = st::read_file(path);
  } catch (const st::FormatError&) {
  }
  if (parsed.has_value() != read.has_value()) __builtin_trap();
  if (parsed && !same_file(*parsed, *read)) __builtin_trap();
}

bool same_state(const engine::TensorMap& a, const engine::TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.shape() != t.shape() || it->second.dtype() != t.dtype() ||
        std::memcmp(it->second.raw_data(), t.raw_data(), t.nbytes()) != 0) {
      return false;
    }
  }
  return true;
}

// The tools' loader; a file it accepts must survive save_weights and load_weights unchanged.
void check_loader(const std::string& path) {
  app::LoadedModel m;
  try {
    m = app::load_weights(path);
  } catch (const engine::Error&) {
    return;
  }
  const std::string again = (scratch() / "again.safetensors").string();
  app::save_weights(again, *m.net, m.info);
  app::LoadedModel back = app::load_weights(again);
  if (app::model_metadata(back.info) != app::model_metadata(m.info)) __builtin_trap();
  if (!same_state(back.net->state_dict(), m.net->state_dict())) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::optional<st::File> parsed = parse_or_refuse(bytes, size);
  if (parsed) check_parsed(*parsed);
  const std::string path = (scratch() / "input.safetensors").string();
  write_bytes(path, bytes, size);
  check_reader_agrees(path, parsed);
  check_loader(path);
  return 0;
}
