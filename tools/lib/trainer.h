// The training run behind tools/train: data, model, optimizer and schedule from a TrainConfig,
// the epoch loop with progress and a test pass per epoch, metrics.csv, checkpoints, interruption
// and exact resume.
//
// Files in config.out:
//   metrics.csv               one row per finished epoch (rewritten atomically each epoch)
//   last.safetensors          weights after the last finished epoch (see model_io.h)
//   best.safetensors          weights of the epoch with the best test accuracy so far
//   last.state.safetensors    everything a resume needs, in one file so that it is written
//                             atomically as a whole: the weights, the optimizer's buffers, and in
//                             its metadata the config, the position (epoch and batch), the
//                             running sums of a part-done epoch, the schedule, the dropout
//                             generator, the metrics history and the best accuracy.
//   config.json               the settings of the run, for people
// The loader's order and augmentation are functions of (seed, epoch) (data/loader.h), so resuming
// at (epoch, batch) replays exactly what the uninterrupted run would have done: on the CPU, with
// the same thread count, metrics and weights come out bit-identical.
#pragma once
#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace app {

struct TrainConfig {
  std::string model = "simple";
  std::string train_dir, test_dir;
  int64_t epochs = 10;
  int64_t batch_size = 8;
  double lr = 0.05;
  std::string optimizer = "rmsprop";  // rmsprop (alpha 0.9) | sgd | adam | adamw
  std::string scheduler = "plateau";  // plateau (factor 0.2, on the test loss) | step | cosine | none
  int64_t image_size = 64;
  bool balanced = false;  // inverse-class-frequency weighted sampling
  bool augment = false;   // random resized crop + horizontal flip
  std::string device = "auto";  // auto | cpu | cuda
  std::string backend;          // native | cudnn; empty: the engine's default
  int64_t threads = 0;          // compute threads; 0 = every core
  int64_t workers = 2;          // loader threads
  uint64_t seed = 0;
  std::string out = "runs/latest";
  bool resume = false;
  float width = 1.f;
  bool strict = false;
  int64_t cache_mb = 2048;
  bool plot = true;
  // For tests: behave as if SIGINT arrived after this many steps of this process (-1: never), and
  // make the loss NaN at this global step (-1: never).
  int64_t stop_after_steps = -1;
  int64_t nan_at_step = -1;

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  void validate() const;  // throws engine::Error naming the flag at fault
};

// The settings a resumed run must share with the run it continues (a difference is an error);
// the others (epochs, threads, workers, device, backend, out, plot, cache_mb, strict) may change.
const std::vector<std::string>& resume_locked_settings();

struct TrainOutcome {
  int exit_code = 0;  // 0 done, 1 error, 3 non-finite loss, 130 interrupted
  int64_t epochs_done = 0;
  double last_test_accuracy = 0, best_test_accuracy = 0;
};

// Runs (or resumes) a training run, printing progress to stdout and errors to stderr. Library
// errors propagate as exceptions; interruptions and non-finite losses are outcomes.
TrainOutcome run_training(TrainConfig config);

// Installs SIGINT/SIGTERM handlers that ask the running training to stop after its current step.
void install_stop_handlers();
std::atomic<bool>& stop_requested();

// Reads the config stored in OUT/last.state.safetensors (for --resume).
TrainConfig saved_config(const std::string& out_dir);
std::string state_path(const std::string& out_dir);

}  // namespace app
