// Checkpoints written on a background thread, so that training goes on while the bytes reach
// the disk. Each file is still written atomically (engine::write_file_atomic: temporary file,
// fsync, rename), one at a time and in the order queued, so a crash at any moment leaves every
// file either whole and old or whole and new, exactly as a synchronous write would.
//
// The caller owns the rule that makes this safe: a queued file's tensors must not change until
// the file is written. The trainer queues the live tensors (no copies: at full width they would
// cost as much memory as the weights and the optimizer state together) and calls wait() before
// the next step changes them.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "engine/tensor_io.h"

namespace app {

// The tensors as the writer may read them: device tensors as host copies (made here, on the
// caller's thread, so the writer never touches a device), host tensors themselves.
engine::Tensor for_writer(const engine::Tensor& t);
engine::TensorMap for_writer(const engine::TensorMap& tensors);

class CheckpointWriter {
 public:
  CheckpointWriter() = default;
  // Finishes the queued files; a failure then is printed to stderr (a destructor cannot throw).
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Queues an atomic write of path.
  void save(std::string path, engine::TensorMap tensors, engine::Metadata meta);
  // Queues path to become the same file as `existing` (written by a save queued before): a hard
  // link, no bytes written; where the file system has none, the tensors are written instead.
  void save_as_link(std::string path, std::string existing, engine::TensorMap tensors,
                    engine::Metadata meta);
  // Returns when every queued file is written. Throws the first failure (engine::Error naming
  // the file); the files queued after a failure are not written.
  void wait();
  // Throws a failure that has already happened, without waiting.
  void check();
  // Files written so far, and how many of them were hard links.
  int64_t files_written() const;
  int64_t files_linked() const;

 private:
  void run();
  void enqueue(std::function<void()> job);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false, stopping_ = false;
  std::string error_;
  bool reported_ = false;  // error_ was thrown by wait() or check()
  int64_t written_ = 0, linked_ = 0;
  std::thread thread_;
};

}  // namespace app
