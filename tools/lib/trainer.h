// The training run behind tools/train: data, model, optimizer and schedule from a TrainConfig
// (train_config.h), the epoch loop with progress and a test pass per epoch, metrics.csv,
// checkpoints, interruption and exact resume.
//
// Files in config.out:
//   metrics.csv               one row per finished epoch (rewritten atomically each epoch)
//   last.safetensors          weights after the last finished epoch (see model_io.h)
//   best.safetensors          weights of the epoch with the best test accuracy so far
//   last.state.safetensors    everything a resume needs (train_state.h)
//   config.json               the settings of the run, for people
// The loader's order and augmentation are functions of (seed, epoch) (data/loader.h), so resuming
// at (epoch, batch) replays exactly what the uninterrupted run would have done: on the CPU, with
// the same thread count, metrics and weights come out bit-identical.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "tools/lib/train_config.h"

namespace app {

struct TrainOutcome {
  int exit_code = 0;  // 0 done, 1 error, 3 non-finite loss, 130 interrupted
  int64_t epochs_done = 0;
  double last_test_accuracy = 0, best_test_accuracy = 0;
};

// Runs (or resumes) a training run, printing progress to stdout and errors to stderr. Library
// errors propagate as exceptions; interruptions and non-finite losses are outcomes.
TrainOutcome train(TrainConfig config);

// Installs SIGINT/SIGTERM handlers that ask the running training to stop after its current step.
void install_stop_handlers();
std::atomic<bool>& stop_requested();

// Reads the config stored in OUT/last.state.safetensors (for --resume).
TrainConfig saved_config(const std::string& out_dir);

}  // namespace app
