// The training state file, OUT/last.state.safetensors: everything a resume needs, in one file so
// that it is written atomically as a whole. Tensors: the weights ("model.<key>") and the
// optimizer's buffers ("optim.<key>"). Metadata: the format, the config, the position (epoch and
// batch), the running sums of a part-done epoch, the schedule (a batch-window schedule's part
// window included), the dropout generator, the metrics history and the best accuracy. Writing and
// reading stand side by side here, with the one format check.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/optim.h"
#include "engine/random.h"
#include "engine/scheduler.h"
#include "engine/tensor_io.h"
#include "layers/module.h"
#include "tools/lib/train_config.h"

namespace app {

// Running sums of a part-done epoch.
struct EpochSums {
  double loss_sum = 0, seconds = 0, train_seconds = 0;
  int64_t correct = 0, seen = 0;
  // The lr the epoch started with (metrics.csv's lr); NaN: not known (state files of format 1,
  // whose schedules changed the lr only between epochs, so the lr at resume is the epoch's).
  double lr = std::numeric_limits<double>::quiet_NaN();
  nlohmann::json to_json() const;
  static EpochSums from_json(const nlohmann::json& j);
};

// The live objects whose state the file holds besides TrainState's own numbers.
struct TrainParts {
  engine::Module& net;
  engine::Optimizer& opt;
  engine::LRScheduler* sched;  // null: no schedule
  engine::Generator& dropout_gen;
};

struct TrainState {
  int64_t epoch = 0, batch = 0;  // where to continue
  EpochSums partial;
  nlohmann::json history = nlohmann::json::array();  // one object per finished epoch
  double best_accuracy = -1;
  int64_t best_epoch = 0;

  void save(const std::string& path, const TrainConfig& cfg, const TrainParts& parts) const;
  // What save() writes: the live tensors ("model.<key>", "optim.<key>") and the metadata.
  void contents(const TrainConfig& cfg, const TrainParts& parts, engine::TensorMap& tensors,
                engine::Metadata& meta) const;
  // Reads the file and restores the parts' states from it; throws naming the file.
  static TrainState load(const std::string& path, const TrainParts& parts);
  // The config stored in the file.
  static TrainConfig load_config(const std::string& path);
};

// OUT/last.state.safetensors
std::string state_path(const std::string& out_dir);

}  // namespace app
