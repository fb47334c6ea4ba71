// The threaded data loader: worker threads read, decode and transform images into whole batches
// while the model trains on earlier ones.
//
//   - Batches come out in order; at most `prefetch` of them are assembled ahead of the consumer
//     (a bounded queue, so a slow consumer never makes the loader eat memory).
//   - The epoch's order comes from sampler.h and each sample's augmentation from its own Philox
//     stream keyed by (seed, epoch, position in the epoch): the batches are a function of the seed
//     and the epoch alone, whatever the number of threads.
//   - A cache keeps the deterministic part of each sample (Transform::base: the decoded image
//     resized to image_size, or the decoded image itself when augmenting) as uint8, so epochs
//     after the first decode no JPEG. It is capped in bytes; when the dataset does not fit, the
//     images that fit are cached, the rest are decoded each epoch, and cache_message() says so.
//   - With pin_memory and a CUDA runtime, batches are assembled in pinned host memory.
//   - A file that passed the scan but fails to decode (a corrupt entropy stream) is dropped from
//     its batch with one warning, and skipped the same way in later epochs; with strict it is an
//     error. Errors in a worker reach the consumer as the exception thrown by next().
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "engine/tensor.h"

namespace data {

enum class SampleOrder { Sequential, Shuffle, Balanced };

struct LoaderOptions {
  int batch_size = 8;
  int threads = 2;   // worker threads; 0 = load in the calling thread
  int prefetch = 4;  // batches assembled ahead of the consumer
  SampleOrder order = SampleOrder::Shuffle;
  bool drop_last = false;
  uint64_t seed = 0;
  TransformOptions transform;
  int64_t cache_bytes = int64_t(2) << 30;  // 0 = no cache
  bool pin_memory = false;
  bool strict = false;
  // false: batches carry indices and labels only, in the same order (a feature cache supplies
  // the inputs); no file is read.
  bool load_images = true;
  DecodeLimits limits;
  std::function<void(const std::string&)> log;  // warnings; default: stderr
};

struct Batch {
  engine::Tensor images;          // [B, 3, S, S] float32 on the CPU (undefined: !load_images)
  engine::Tensor labels;          // [B] int64 (-1 for unlabelled samples)
  std::vector<int64_t> indices;   // dataset indices of the B samples
  int64_t number = 0;             // position of the batch in the epoch
  int64_t size() const { return int64_t(indices.size()); }
};

class DataLoader {
 public:
  DataLoader(const ImageDataset& dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Begins epoch `epoch` at batch `first_batch` (any order: a resumed run starts where it
  // stopped, and sees the batches an uninterrupted run would have); batches of a previous epoch
  // not yet consumed are discarded.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch; false when the epoch is over.
  bool next(Batch& out);

  int64_t batches_per_epoch() const { return batches_; }
  int64_t samples_per_epoch() const;
  const ImageDataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return opt_; }
  const Transform& transform() const { return transform_; }
  const std::string& cache_message() const { return cache_message_; }

  struct Stats {
    int64_t decoded = 0;       // JPEG/PNG/BMP decodes done
    int64_t cache_hits = 0;    // samples served from the cache
    int64_t cached_images = 0;
    int64_t cache_bytes = 0;
    int64_t skipped = 0;       // samples dropped because their file failed to decode
    double decode_seconds = 0;  // CPU time of reading, decoding and Transform::base (all threads)
  };
  Stats stats() const;
  // From now on no image is added to the cache; those already in it are still served. For a run
  // whose decoding costs too little against its training step to be worth the memory.
  void stop_caching() { caching_.store(false, std::memory_order_relaxed); }

 private:
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  void worker_loop();
  Batch make_batch(int64_t number, const std::vector<int64_t>& indices, uint64_t key);
  std::vector<int64_t> batch_indices(int64_t number) const;  // needs mu_ or the consumer thread
  void warn(const std::string& line) const;

  const ImageDataset& dataset_;
  LoaderOptions opt_;
  Transform transform_;
  std::vector<int> labels_;
  int64_t batches_ = 0;
  std::string cache_message_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<int64_t> order_;
  int64_t epoch_ = -1;
  uint64_t epoch_key_ = 0, generation_ = 0;
  int64_t next_claim_ = 0, next_deliver_ = 0;
  std::map<int64_t, Result> ready_;
  bool stop_ = false;
  std::vector<std::thread> threads_;

  // Cache slots: 0 empty, 1 being written, 2 ready (immutable from then on).
  std::vector<Image> cache_;
  std::unique_ptr<std::atomic<uint8_t>[]> cache_state_;
  std::unique_ptr<std::atomic<bool>[]> bad_;  // decode failed (warned once)
  std::atomic<int64_t> cache_used_{0}, cached_{0}, decoded_{0}, hits_{0}, skipped_{0};
  std::atomic<int64_t> decode_ns_{0};
  std::atomic<bool> caching_{true};
};

}  // namespace data
