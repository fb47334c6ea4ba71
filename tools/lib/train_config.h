// The settings of a training run, in one table (APP_TRAIN_SETTINGS) that makes the TrainConfig
// members and their defaults, the JSON stored in config.json and in the training state, the rule
// for what a resumed run may change, and train's command-line flags (tools/train.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace app {

// What a resumed run (train --out DIR --resume) does with a setting:
//   Keep         it shapes the results, so the run keeps its saved value; giving the flag with
//                another value is an error
//   Change       the saved value unless the flag is given
//   CommandLine  always this invocation's value (where the run lives, whether to plot)
enum class OnResume { Keep, Change, CommandLine };

// X(type, member and JSON key, default, flag, help, on resume), in the order of train --help.
// A bool is a flag without a value; one named --no-... sets its member to false.
#define APP_TRAIN_SETTINGS(X)                                                                      \
  X(std::string, model, "simple", "--model",                                                      \
    "simple | bn_dropout | sigmoid | tanh | resnet50 | mobilenet_v2 | ensemble", Keep)             \
  X(std::string, weights, "", "--weights",                                                         \
    "start from these weights: a converted torchvision file (tools/convert_torchvision.py) or a "  \
    "checkpoint of the same model; its head is kept when its class count matches the data",        \
    Keep)                                                                                          \
  X(bool, freeze_backbone, false, "--freeze-backbone",                                             \
    "resnet50 | mobilenet_v2: train the head only (fc / classifier.1)", Keep)                      \
  X(std::string, unfreeze_from, "", "--unfreeze-from",                                             \
    "with --freeze-backbone: also train this block and every later one (layer4, features.14)",     \
    Keep)                                                                                          \
  X(std::string, frozen_bn, "eval", "--frozen-bn",                                                 \
    "frozen BatchNorm layers: eval (running statistics, never changed) | train (batch "            \
    "statistics, running statistics updated: the study's PyTorch code)",                           \
    Keep)                                                                                          \
  X(std::string, weights_a, "", "--weights-a",                                                     \
    "ensemble: the fine-tuned resnet50 checkpoint (modelA)", Keep)                                 \
  X(std::string, weights_b, "", "--weights-b",                                                     \
    "ensemble: the fine-tuned mobilenet_v2 checkpoint (modelB)", Keep)                             \
  X(bool, train_heads, false, "--train-heads", "ensemble: also train the members' heads", Keep)    \
  X(bool, feature_cache, true, "--no-feature-cache",                                               \
    "do not cache a frozen backbone's features (recompute them every epoch)", Change)              \
  X(int64_t, feature_cache_mb, 1024, "--feature-cache-mb",                                         \
    "memory for cached features; a larger cache is kept in a file in the run folder", Change)      \
  X(std::string, train_dir, "", "--train-dir",                                                     \
    "training images: DIR/<class>/*.jpg (Kaggle's seg_train, either level)", Keep)                 \
  X(std::string, test_dir, "", "--test-dir", "test images, same classes (Kaggle's seg_test)",      \
    Keep)                                                                                          \
  X(int64_t, epochs, 10, "--epochs", "epochs to train (with --resume: the new total)", Change)     \
  X(int64_t, batch_size, 8, "--batch-size", "images per step", Keep)                               \
  X(double, lr, 0.05, "--lr", "learning rate", Keep)                                               \
  X(std::string, optimizer, "rmsprop", "--optimizer", "rmsprop (alpha 0.9) | sgd | adam | adamw",  \
    Keep)                                                                                          \
  X(std::string, scheduler, "plateau", "--scheduler",                                              \
    "plateau (x0.2 when the mean training loss of 50 batches stalls 15 such windows; windows "     \
    "restart each epoch, a part window at its end is dropped) | plateau-epoch (x0.2 when the "     \
    "test loss stalls 10 epochs) | step (x0.1 every 10) | cosine | none",                          \
    Keep)                                                                                          \
  X(int64_t, image_size, 0, "--image-size",                                                       \
    "images are resized to this side (0: 64 for the custom CNNs, a multiple of 8; the weights "     \
    "file's for resnet50/mobilenet_v2, 224 without one)",                                          \
    Keep)                                                                                          \
  X(int64_t, resize_size, -1, "--resize-size",                                                     \
    "torchvision's preset: resize the shorter side to this, then centre-crop --image-size (0: "    \
    "plain resize to --image-size; -1: the weights file's when --image-size is not given, else 0)", \
    Keep)                                                                                          \
  X(bool, balanced, false, "--balanced",                                                           \
    "sample classes equally often (inverse-frequency weights)", Keep)                              \
  X(bool, augment, false, "--augment", "random resized crops and horizontal flips", Keep)          \
  X(std::string, device, "auto", "--device", "auto | cpu | cuda (auto: cuda when usable)", Change) \
  X(std::string, backend, "", "--backend",                                                         \
    "CUDA kernels: native | cudnn (default: cudnn if built)", Change)                              \
  X(int64_t, threads, 0, "--threads", "compute threads (0: every core)", Change)                   \
  X(int64_t, workers, 2, "--workers", "image loading threads", Change)                             \
  X(uint64_t, seed, 0, "--seed", "seed for weights, order, augmentation and dropout", Keep)        \
  X(std::string, out, "runs/latest", "--out", "run folder: checkpoints, metrics.csv, plots",       \
    CommandLine)                                                                                   \
  X(float, width, 1.f, "--width", "channel-width multiplier (small values for quick runs)", Keep)  \
  X(bool, strict, false, "--strict", "stop at the first bad image instead of skipping it", Change) \
  X(std::string, exclude, "", "--exclude",                                                        \
    "leave out the images listed in this file: the explorer's tags CSV (its path column) or one "  \
    "path per line",                                                                               \
    Keep)                                                                                          \
  X(int64_t, cache_mb, -1, "--cache-mb",                                                          \
    "MB of decoded images kept for later epochs (0: none; -1: up to 2048, and on the CPU only "    \
    "while decoding costs at least 5% of the training step's time per image)",                     \
    Change)                                                                                        \
  X(bool, plot, true, "--no-plot", "do not draw the plots at the end", CommandLine)

struct TrainConfig {
#define APP_TRAIN_MEMBER(type, name, default_value, flag, help, on_resume) \
  type name = default_value;
  APP_TRAIN_SETTINGS(APP_TRAIN_MEMBER)
#undef APP_TRAIN_MEMBER

  // How this invocation runs, not settings of the run (never saved):
  bool resume = false;
  // For tests: behave as if SIGINT arrived after this many steps of this process (-1: never), and
  // make the loss NaN at this global step (-1: never).
  int64_t stop_after_steps = -1;
  int64_t nan_at_step = -1;

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  void validate() const;  // throws engine::Error naming the flag at fault
};

// The config of the run being resumed (`saved`) with this invocation's settings applied by each
// setting's OnResume rule; `given_flag(flag)` says whether the flag was on the command line.
// Throws naming the flag when a Keep setting is given with another value.
TrainConfig resumed_config(const TrainConfig& saved, const TrainConfig& given,
                           const std::function<bool(const std::string& flag)>& given_flag);

}  // namespace app
