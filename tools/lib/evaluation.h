// Running a model over a loader without gradients: test loss and accuracy, the confusion matrix
// with per-class precision/recall/F1 (evaluate), and class probabilities per image (predict).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/device.h"
#include "layers/module.h"

namespace app {

// The device for --device auto|cpu|cuda (auto: a GPU whose backend runs convolutions, else the
// CPU); --backend native|cudnn ("" = default) becomes the process's CUDA backend.
engine::Device choose_device(const std::string& want, const std::string& backend);

// The predicted class of each row of [B, num_classes] logits (first maximum wins, as argmax).
std::vector<int> argmax_rows(const engine::Tensor& logits, int num_classes);

// The loader for evaluate/predict: dataset order, no augmentation, no cache, the checkpoint's
// input size and normalisation, pinned batches for a GPU. Checks batch_size and workers.
struct ModelInfo;
data::LoaderOptions inference_loader_options(const ModelInfo& info, int batch_size, int workers,
                                             bool strict, engine::Device device);

struct EvalResult {
  double loss = 0, accuracy = 0;  // mean cross-entropy, fraction correct
  int64_t samples = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
};
// Eval mode, no gradients, one pass over the loader's current epoch order (sequential).
EvalResult evaluate(engine::Module& net, data::DataLoader& loader, int num_classes,
                    engine::Device device);
// The same with the logits of each batch from `logits` (which also sets the labels they are for):
// a head on cached features.
EvalResult evaluate_batches(
    engine::Module& net, data::DataLoader& loader, int num_classes,
    const std::function<engine::Tensor(const data::Batch&, engine::Tensor& labels)>& logits);

struct ClassScores {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};
std::vector<ClassScores> class_scores(const std::vector<std::vector<int64_t>>& confusion);
// {"accuracy", "loss", "samples", "classes", "per_class": {name: {precision, recall, f1,
// support}}, "confusion_matrix"}.
nlohmann::json evaluation_json(const EvalResult& r, const std::vector<std::string>& classes);
// Human-readable: per-class table and the confusion matrix.
std::string evaluation_table(const EvalResult& r, const std::vector<std::string>& classes);

// Softmax probabilities per sample, in dataset order: probs[i] has one entry per class.
std::vector<std::vector<float>> predict_probabilities(engine::Module& net, data::DataLoader& loader,
                                                      int num_classes, engine::Device device,
                                                      std::vector<int64_t>* kept_indices);

}  // namespace app
