// Atomic file writes: temporary file, flush, fsync, rename, fsync of the directory.
#include "engine/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace engine {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}
std::string errno_str() { return std::strerror(errno); }

// Fault injection for the tests that prove a crash mid-write loses nothing: when the environment
// variable ENGINE_FAULT_KILL_IN_WRITE is set and the target path contains its value, the process
// kills itself (SIGKILL: no handler, no cleanup) after writing half of the temporary file.
bool kill_requested(const std::string& path) {
  const char* v = std::getenv("ENGINE_FAULT_KILL_IN_WRITE");
  return v && *v && path.find(v) != std::string::npos;
}

// Without syncing the directory the rename itself may be lost on a crash.
void sync_parent_dir(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail(path, "cannot open directory '" + dir.string() + "' to fsync: " + errno_str());
  int rc = fsync(fd);
  std::string why = rc != 0 ? errno_str() : "";
  close(fd);
  if (rc != 0) fail(path, "written, but fsync of directory '" + dir.string() + "' failed: " + why);
}

std::string temp_name(const std::string& path) { return path + ".tmp-" + std::to_string(getpid()); }

}  // namespace

void write_file_atomic(const std::string& path,
                       const std::vector<std::span<const uint8_t>>& parts) {
  const std::string tmp = temp_name(path);
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) fail(path, "cannot create temporary file '" + tmp + "': " + errno_str());
  try {
    const bool kill_midway = kill_requested(path);
    for (std::span<const uint8_t> part : parts) {
      if (kill_midway) {
        std::fwrite(part.data(), 1, part.size() / 2, fp);
        std::fflush(fp);
        ::kill(::getpid(), SIGKILL);
      }
      if (!part.empty() && std::fwrite(part.data(), 1, part.size(), fp) != part.size())
        fail(path, "write failed: " + errno_str());
    }
    if (std::fflush(fp) != 0) fail(path, "flush failed: " + errno_str());
    if (fsync(fileno(fp)) != 0) fail(path, "fsync failed: " + errno_str());
    FILE* closing = fp;
    fp = nullptr;
    if (std::fclose(closing) != 0) fail(path, "close failed: " + errno_str());
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      fail(path, "cannot rename '" + tmp + "' into place: " + errno_str());
  } catch (...) {
    if (fp) std::fclose(fp);
    std::remove(tmp.c_str());
    throw;
  }
  sync_parent_dir(path);
}

bool link_file_atomic(const std::string& existing, const std::string& path) {
  const std::string tmp = temp_name(path);
  std::remove(tmp.c_str());  // left by a process of the same id that was killed
  if (::link(existing.c_str(), tmp.c_str()) != 0) {
    const int e = errno;
    if (e == EPERM || e == EXDEV || e == EOPNOTSUPP || e == EMLINK) return false;
    fail(path, "cannot link '" + existing + "' to '" + tmp + "': " + std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_str();
    std::remove(tmp.c_str());
    fail(path, "cannot rename '" + tmp + "' into place: " + why);
  }
  sync_parent_dir(path);
  return true;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(
      path, {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
}

}  // namespace engine
