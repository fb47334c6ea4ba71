// Writing files so that a crash never leaves half of one under the real name: the bytes go to a
// temporary file beside the target, are flushed and fsync'ed, renamed over the target, and the
// directory is fsync'ed so the rename itself survives. Checkpoints, metrics and generated images
// are all written this way.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace engine {

// Writes the concatenation of parts to path atomically. (Tests can make the process kill itself
// half-way through a write: see ENGINE_FAULT_KILL_IN_WRITE in file_io.cpp.) Throws engine::Error
// "<path>: <reason>".
void write_file_atomic(const std::string& path, const std::vector<std::span<const uint8_t>>& parts);
void write_file_atomic(const std::string& path, const std::string& text);

// Makes `path` a second name of the file `existing` (a hard link: no bytes written), atomically
// in the same way: a temporary link beside the target, renamed over it, the directory fsync'ed.
// Returns false, changing nothing, where the file system has no hard links (or `existing` is on
// another one); throws engine::Error "<path>: <reason>" on any other failure.
bool link_file_atomic(const std::string& existing, const std::string& path);

}  // namespace engine
