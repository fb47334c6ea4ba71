// Reader and writer of the safetensors file format (huggingface/safetensors), kept apart from the
// engine's Tensor so that the format rules can be tested alone and reused by tools. A file is an
// 8-byte little-endian header length N, N bytes of a JSON object describing each tensor
// ({"dtype", "shape", "data_offsets"} plus an optional "__metadata__" string map), then the data
// buffer. Reading checks every rule of the format and throws FormatError naming the file and the
// rule; a file that loads here is one the reference implementation loads too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include "engine/error.h"

namespace engine::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

// The dtype's spelling in the header ("F32", "BOOL", ...).
const char* dtype_name(DType t);
size_t dtype_size(DType t);

// One tensor of a file. bytes holds the raw little-endian data, exactly dtype_size * prod(shape).
struct Entry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // [] for a scalar; a 0 anywhere makes a legal zero-element tensor
  std::vector<uint8_t> bytes;
};

struct File {
  std::vector<Entry> entries;                        // in the order of their data offsets
  std::map<std::string, std::string> metadata;       // "__metadata__"; written only when non-empty
  const Entry* find(const std::string& name) const;  // nullptr if absent
};

class FormatError : public ::engine::Error {
 public:
  using ::engine::Error::Error;
};

// Reads and validates a whole file. I/O failures are reported as FormatError too, so a caller
// loading weights has one exception type to catch.
File read_file(const std::string& path);
// Same rules as read_file on bytes in memory; source_name stands for the file in messages.
File parse(const std::string& source_name, const uint8_t* data, size_t size);

// Writes atomically (temporary file, fsync, rename, fsync of the directory) so that a crash in
// the middle of saving a checkpoint never leaves a truncated file under the real name. Entries
// are laid out in their order with no gaps. Throws FormatError if f breaks a rule of the format
// (empty or duplicate name, bytes not matching dtype and shape) or on I/O failure.
void write_file(const std::string& path, const File& f);
// The same with each entry's bytes given as a view (views[i] for f.entries[i], whose own bytes
// are ignored): a checkpoint is written straight from the tensors, with no second copy of it in
// memory.
void write_file(const std::string& path, const File& f,
                const std::vector<std::span<const uint8_t>>& views);
std::vector<uint8_t> serialize(const File& f);

// Converts one entry to float32: F32, F64, F16 and BF16 (the last two exactly). Anything else
// throws FormatError naming the entry and its dtype.
std::vector<float> to_float32(const Entry& e);
// Converts one entry of an integer type (I64, I32, I16, I8, U8) or BOOL to int64.
std::vector<int64_t> to_int64(const Entry& e);

}  // namespace engine::safetensors
