// The background checkpoint writer; see checkpoint_writer.h. One thread, started by the first
// queued file, takes the jobs in order; a failure stops the queue and is kept for wait().
#include "tools/lib/checkpoint_writer.h"

#include <cstdio>

#include "engine/error.h"
#include "engine/file_io.h"

namespace app {

engine::Tensor for_writer(const engine::Tensor& t) {
  return t.device().is_cpu() ? t : t.to(engine::Device::cpu());
}

engine::TensorMap for_writer(const engine::TensorMap& tensors) {
  engine::TensorMap out;
  for (const auto& [name, t] : tensors) out.emplace(name, for_writer(t));
  return out;
}

CheckpointWriter::~CheckpointWriter() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
    if (!error_.empty() && !reported_) std::fprintf(stderr, "train: %s\n", error_.c_str());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::enqueue(std::function<void()> job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.empty()) return;  // after a failure nothing more is written (wait() reports it)
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  jobs_.push_back(std::move(job));
  cv_.notify_all();
}

void CheckpointWriter::save(std::string path, engine::TensorMap tensors, engine::Metadata meta) {
  enqueue([this, path = std::move(path), tensors = std::move(tensors), meta = std::move(meta)] {
    engine::save_tensors(path, tensors, meta);
    std::lock_guard<std::mutex> lock(mu_);
    ++written_;
  });
}

void CheckpointWriter::save_as_link(std::string path, std::string existing,
                                    engine::TensorMap tensors, engine::Metadata meta) {
  enqueue([this, path = std::move(path), existing = std::move(existing),
           tensors = std::move(tensors), meta = std::move(meta)] {
    const bool linked = engine::link_file_atomic(existing, path);
    if (!linked) engine::save_tensors(path, tensors, meta);
    std::lock_guard<std::mutex> lock(mu_);
    ++written_;
    linked_ += linked;
  });
}

void CheckpointWriter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, nothing left
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_ = true;
    lock.unlock();
    std::string failure;
    try {
      job();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    job = nullptr;  // the tensors are released before the writer reports itself idle
    lock.lock();
    busy_ = false;
    if (!failure.empty()) {
      if (error_.empty()) error_ = failure;
      jobs_.clear();  // a later file must not claim an epoch whose earlier files are missing
    }
    cv_.notify_all();
  }
}

void CheckpointWriter::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
  if (!error_.empty()) {
    reported_ = true;
    throw engine::Error(error_);
  }
}

void CheckpointWriter::check() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.empty()) {
    reported_ = true;
    throw engine::Error(error_);
  }
}

int64_t CheckpointWriter::files_written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

int64_t CheckpointWriter::files_linked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return linked_;
}

}  // namespace app
