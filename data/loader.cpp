// The threaded loader; see loader.h.
#include "data/loader.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <iostream>

#include "data/sampler.h"

namespace data {
namespace {

// CPU time of the calling thread: what a decode costs, whether or not the thread was descheduled
// for the training threads meanwhile.
int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

constexpr uint64_t kAugmentStream = 3;

std::string megabytes(int64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MB";
}

}  // namespace

DataLoader::DataLoader(const ImageDataset& dataset, LoaderOptions options)
    : dataset_(dataset), opt_(std::move(options)), transform_(opt_.transform) {
  ENGINE_CHECK(opt_.batch_size > 0, "loader: batch size ", opt_.batch_size, " must be positive");
  ENGINE_CHECK(opt_.threads >= 0 && opt_.threads <= 256, "loader: thread count ", opt_.threads,
               " must be in 0..256");
  ENGINE_CHECK(opt_.prefetch > 0, "loader: prefetch ", opt_.prefetch, " must be positive");
  ENGINE_CHECK(opt_.cache_bytes >= 0, "loader: negative cache size");
  const int64_t n = dataset_.size();
  ENGINE_CHECK(n > 0, "loader: the dataset '", dataset_.report().root, "' is empty");
  if (opt_.order == SampleOrder::Balanced) {
    ENGINE_CHECK(dataset_.labelled(), "loader: balanced sampling needs a labelled dataset");
  }
  for (const Sample& s : dataset_.samples()) labels_.push_back(s.label);
  batches_ = opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
  ENGINE_CHECK(batches_ > 0, "loader: ", n, " samples make no full batch of ", opt_.batch_size,
               " (drop_last)");

  cache_.resize(size_t(n));
  cache_state_ = std::make_unique<std::atomic<uint8_t>[]>(size_t(n));
  bad_ = std::make_unique<std::atomic<bool>[]>(size_t(n));
  for (int64_t i = 0; i < n; ++i) cache_state_[i] = 0, bad_[i] = false;

  int64_t need = 0;
  for (const Sample& s : dataset_.samples()) {
    need += int64_t(transform_.base_bytes(s.width, s.height));
  }
  if (opt_.cache_bytes == 0) {
    cache_message_ = "image cache off: every epoch decodes every image";
  } else if (need <= opt_.cache_bytes) {
    cache_message_ = "image cache: " + std::to_string(n) + " images, " + megabytes(need) +
                     " once filled; epochs after the first decode nothing";
  } else {
    int64_t fit = int64_t(double(n) * double(opt_.cache_bytes) / double(need));
    cache_message_ = "image cache: the " + std::to_string(n) + " images need " + megabytes(need) +
                     ", above the cap of " + megabytes(opt_.cache_bytes) + "; about " +
                     std::to_string(fit) +
                     " will be cached and the rest decoded every epoch (raise the cap to cache "
                     "them all)";
    warn("warning: " + cache_message_);
  }
  for (int t = 0; t < opt_.threads; ++t) threads_.emplace_back([this] { worker_loop(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void DataLoader::warn(const std::string& line) const {
  if (opt_.log) {
    opt_.log(line);
  } else {
    std::cerr << line << "\n";
  }
}

int64_t DataLoader::samples_per_epoch() const {
  return opt_.drop_last ? batches_ * opt_.batch_size : dataset_.size();
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  ENGINE_CHECK(epoch >= 0, "loader: epoch ", epoch, " must be >= 0");
  ENGINE_CHECK(first_batch >= 0 && first_batch <= batches_, "loader: first batch ", first_batch,
               " is outside the epoch's ", batches_, " batches");
  std::vector<int64_t> order;
  switch (opt_.order) {
    case SampleOrder::Sequential: order = sequential_order(dataset_.size()); break;
    case SampleOrder::Shuffle: order = shuffled_order(dataset_.size(), opt_.seed, epoch); break;
    case SampleOrder::Balanced: order = balanced_order(labels_, opt_.seed, epoch); break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;  // results of the previous epoch still in flight are dropped
    order_ = std::move(order);
    epoch_ = epoch;
    epoch_key_ = mix_seed(opt_.seed, uint64_t(epoch), kAugmentStream);
    next_claim_ = next_deliver_ = first_batch;
    ready_.clear();
  }
  work_cv_.notify_all();
}

std::vector<int64_t> DataLoader::batch_indices(int64_t number) const {
  const int64_t begin = number * opt_.batch_size;
  const int64_t end = std::min<int64_t>(begin + opt_.batch_size, int64_t(order_.size()));
  return std::vector<int64_t>(order_.begin() + begin, order_.begin() + end);
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] {
      return stop_ || (epoch_ >= 0 && next_claim_ < batches_ &&
                       next_claim_ < next_deliver_ + opt_.prefetch);
    });
    if (stop_) return;
    const int64_t number = next_claim_++;
    const uint64_t generation = generation_, key = epoch_key_;
    std::vector<int64_t> indices = batch_indices(number);
    lock.unlock();
    Result r;
    try {
      r.batch = make_batch(number, indices, key);
    } catch (...) {
      r.error = std::current_exception();
    }
    lock.lock();
    if (generation == generation_) {
      ready_[number] = std::move(r);
      ready_cv_.notify_all();
    }
  }
}

bool DataLoader::next(Batch& out) {
  while (true) {
    Result r;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ENGINE_CHECK(epoch_ >= 0, "loader: next() before start_epoch()");
      if (next_deliver_ >= batches_) return false;
      const int64_t number = next_deliver_;
      if (threads_.empty()) {
        std::vector<int64_t> indices = batch_indices(number);
        const uint64_t key = epoch_key_;
        ++next_deliver_;
        lock.unlock();
        r.batch = make_batch(number, indices, key);  // throws straight to the caller
      } else {
        ready_cv_.wait(lock, [&] { return ready_.count(number) > 0; });
        r = std::move(ready_[number]);
        ready_.erase(number);
        ++next_deliver_;
        lock.unlock();
        work_cv_.notify_all();  // a prefetch slot is free
      }
    }
    if (r.error) std::rethrow_exception(r.error);
    if (r.batch.size() == 0) continue;  // every file in it failed to decode
    out = std::move(r.batch);
    return true;
  }
}

Batch DataLoader::make_batch(int64_t number, const std::vector<int64_t>& indices, uint64_t key) {
  if (!opt_.load_images) {
    Batch batch;
    batch.number = number;
    batch.indices = indices;
    std::vector<int64_t> labels;
    for (int64_t idx : indices) labels.push_back(labels_[idx]);
    batch.labels = engine::Tensor::from_vector_i64({int64_t(labels.size())}, labels);
    return batch;
  }
  const int s = transform_.options().image_size;
  const int64_t per = int64_t(3) * s * s;
  const int64_t b = int64_t(indices.size());
  const engine::Shape shape{b, 3, s, s};
  engine::Tensor images =
      opt_.pin_memory ? engine::Tensor::empty_pinned(shape) : engine::Tensor::empty(shape);
  float* dst = images.data<float>();
  Batch batch;
  batch.number = number;
  std::vector<int64_t> labels;
  for (int64_t j = 0; j < b; ++j) {
    const int64_t idx = indices[j];
    if (bad_[idx].load(std::memory_order_relaxed)) {
      skipped_.fetch_add(1);
      continue;
    }
    const Image* base = nullptr;
    Image local;
    if (cache_state_[idx].load(std::memory_order_acquire) == 2) {
      base = &cache_[idx];
      hits_.fetch_add(1);
    } else {
      const Sample& smp = dataset_.samples()[idx];
      const int64_t t0 = thread_cpu_ns();
      try {
        local = transform_.base(read_image(smp.path, opt_.limits));
      } catch (const ImageError& e) {
        if (opt_.strict) {
          throw ImageError(e.path(), e.reason() + " (strict mode: stopping at the first bad image)");
        }
        if (!bad_[idx].exchange(true)) warn("warning: skipping " + smp.path + ": " + e.reason());
        skipped_.fetch_add(1);
        continue;
      }
      decode_ns_.fetch_add(thread_cpu_ns() - t0);
      decoded_.fetch_add(1);
      base = &local;
      uint8_t empty = 0;
      const int64_t bytes = int64_t(local.pixels.size());
      if (opt_.cache_bytes > 0 && caching_.load(std::memory_order_relaxed) &&
          cache_state_[idx].compare_exchange_strong(empty, 1)) {
        if (cache_used_.fetch_add(bytes) + bytes <= opt_.cache_bytes) {
          cache_[idx] = std::move(local);
          base = &cache_[idx];
          cached_.fetch_add(1);
          cache_state_[idx].store(2, std::memory_order_release);
        } else {
          cache_used_.fetch_sub(bytes);
          cache_state_[idx].store(0, std::memory_order_release);
        }
      }
    }
    // The sample's random stream: its position in the epoch, never the thread that loads it.
    const uint64_t position = uint64_t(number) * uint64_t(opt_.batch_size) + uint64_t(j);
    SampleRandom rng(key, position * Transform::kDrawsPerSample);
    transform_.finish(*base, rng, dst + int64_t(batch.indices.size()) * per);
    batch.indices.push_back(idx);
    labels.push_back(labels_[idx]);
  }
  const int64_t kept = batch.size();
  if (kept < b) {  // some files failed to decode: a smaller batch
    engine::Tensor smaller = opt_.pin_memory ? engine::Tensor::empty_pinned({kept, 3, s, s})
                                             : engine::Tensor::empty({kept, 3, s, s});
    if (kept > 0) std::memcpy(smaller.data<float>(), dst, size_t(kept * per) * sizeof(float));
    images = smaller;
  }
  batch.images = images;
  batch.labels = engine::Tensor::from_vector_i64({kept}, labels);
  return batch;
}

DataLoader::Stats DataLoader::stats() const {
  Stats s;
  s.decoded = decoded_.load();
  s.cache_hits = hits_.load();
  s.cached_images = cached_.load();
  s.cache_bytes = std::min(cache_used_.load(), opt_.cache_bytes);
  s.skipped = skipped_.load();
  s.decode_seconds = double(decode_ns_.load()) * 1e-9;
  return s;
}

}  // namespace data
