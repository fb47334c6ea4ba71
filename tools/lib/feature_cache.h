// Cached backbone features for frozen-backbone fine-tuning. When everything below the head is
// frozen, BatchNorm is in eval mode and the transforms draw nothing at random, a backbone maps
// each image to the same pooled feature vector in every epoch, so it is computed once (one
// sequential pass over the split) and the head trains on stored rows: each later epoch costs the
// head alone. The study's PyTorch loop ran the whole backbone for every image in every epoch.
//
// Rows live in memory when they fit in the cap, else in a file in the run folder
// (features/<split>-<key>.f32), read back a batch at a time. The key is a digest of what the rows
// depend on: the backbone's frozen tensors, the model, the image size, the resize and the
// normalisation. A file written under another key is rebuilt, never read.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/device.h"
#include "layers/module.h"

namespace app {

// Why the cache cannot be used for a run, or "" when it can.
struct TrainConfig;
std::string feature_cache_refusal(const TrainConfig& cfg);

// The digest of the rows' inputs: every tensor of `net` except those under `head_prefix.`, plus
// the model name and the transform's settings.
std::string feature_cache_key(const engine::Module& net, const std::string& head_prefix,
                              const std::string& model, const data::TransformOptions& t);

class FeatureCache {
 public:
  // `file` is where rows go when samples * dim floats exceed mem_cap_bytes.
  FeatureCache(std::string split, int64_t samples, int64_t dim, std::string key,
               int64_t mem_cap_bytes, std::string file);
  ~FeatureCache();
  FeatureCache(const FeatureCache&) = delete;
  FeatureCache& operator=(const FeatureCache&) = delete;

  // Computes every row with `features` ([B, 3, S, S] on `device` -> [B, dim]) in one pass over
  // `loader` (which must load images in dataset order), or reads a complete file of the same key.
  // Samples whose file fails to decode stay without a row.
  void build(data::DataLoader& loader, const std::function<engine::Tensor(const engine::Tensor&)>& features,
             engine::Device device);
  // The rows of `indices` that exist, as [k, dim] float32 on the CPU; `kept` gets their indices.
  engine::Tensor gather(const std::vector<int64_t>& indices, std::vector<int64_t>* kept);

  bool on_disk() const { return fd_ >= 0; }
  const std::string& key() const { return key_; }
  struct Stats {
    int64_t computed = 0;  // rows computed by the backbone
    int64_t loaded = 0;    // rows read from a file written earlier under the same key
    int64_t served = 0;    // rows handed to the head
  };
  const Stats& stats() const { return stats_; }

 private:
  bool load_existing();
  void put(int64_t i, const float* row);

  std::string split_, key_, file_;
  int64_t samples_, dim_;
  bool in_memory_;
  std::vector<float> rows_;
  std::vector<uint8_t> present_;
  int fd_ = -1;
  Stats stats_;
};

}  // namespace app
