// What the explorer learns from a checkpoint: the model run over a dataset (softmax
// probabilities, the penultimate layer's features, predictions), evaluate's numbers from those
// predictions, calibration (ECE), per-image hardness (entropy, top-2 margin), two label-error
// finders (FiftyOne's mistakenness and cleanlab's confident learning), and the embedding's 2-D map
// (PCA) and uniqueness (mean distance to the nearest neighbours). docs/EXPLORE.md says how the
// report stores each of them.
//
// Probabilities are row-major n x num_classes floats; a label is a class index, -1 when unlabelled.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/dataset.h"
#include "engine/device.h"
#include "tools/lib/evaluation.h"
#include "tools/lib/model_io.h"

namespace app {

struct ModelOutputs {
  int64_t n = 0;  // rows: images actually run (kept.size())
  int num_classes = 0;
  int64_t feature_dim = 0;
  std::vector<float> probs;     // n * num_classes, softmax (computed in double), in `kept` order
  std::vector<float> features;  // n * feature_dim, the penultimate layer
  std::vector<int> pred;        // argmax of the logits, first maximum wins (as evaluate)
  std::vector<int64_t> kept;    // dataset index of each row, ascending; a file that fails to
                                // decode is skipped, as predict and evaluate skip it
};

// Runs the model over the dataset in dataset order, eval mode, no gradients, through
// inference_loader_options (non-strict) and the same layers forward() runs, so the predictions
// are evaluate's. The penultimate layer: CustomCnn::features, Ensemble::member_logits, a
// TransferModel's pooled features. `progress` (may be empty) gets (dataset images passed, total)
// after each batch. Throws for a model without a known penultimate layer.
ModelOutputs run_model(LoadedModel& m, const data::ImageDataset& ds, int batch_size, int workers,
                       engine::Device dev, const std::function<void(int64_t, int64_t)>& progress);

// evaluate's EvalResult from run_model's rows: labels[i] is row i's class (all must be labelled).
// The loss is the mean of -log p[label] in double (p clamped to the smallest float above 0).
EvalResult eval_from_predictions(const ModelOutputs& o, const std::vector<int>& labels);

// Top-label expected calibration error (Guo et al. 2017): equal-width confidence bins, bin i =
// (i/bins, (i+1)/bins]; sum over bins of |bin|/N * |accuracy - mean confidence|. Unlabelled rows
// are ignored; 0 when none is labelled.
double expected_calibration_error(const std::vector<float>& probs, const std::vector<int>& labels,
                                  int num_classes, int bins = 15);

// FiftyOne brain's classification mistakenness: (m * exp(-entropy) + 1) / 2 with m = 1 when the
// prediction differs from the label, -1 when it agrees; entropy in nats. -1 for unlabelled rows.
std::vector<float> mistakenness(const std::vector<float>& probs, const std::vector<int>& labels,
                                int num_classes);

struct ConfidentLearning {
  std::vector<int> flagged;                 // per row: 1 when off the joint's diagonal
  std::vector<float> self_confidence;       // per row: p[label], -1 when unlabelled
  std::vector<int64_t> ranking;             // flagged rows, self-confidence ascending, then row
  std::vector<std::vector<int64_t>> joint;  // [given label][confident class]
};
// cleanlab's confident joint (uncalibrated): class j's threshold is the mean p_j over rows
// labelled j; a row's candidates are the classes with p_j >= threshold_j (less 1e-6, as cleanlab
// compares); its confident class is the candidate with the largest p_j (first on ties). A class
// no row is labelled with is never a candidate.
ConfidentLearning confident_learning(const std::vector<float>& probs,
                                     const std::vector<int>& labels, int num_classes);

std::vector<float> softmax_entropy(const std::vector<float>& probs, int num_classes);  // nats
std::vector<float> top2_margin(const std::vector<float>& probs, int num_classes);      // p1 - p2

// 2-D PCA of n x dim row-major points, deterministic: the covariance in double (dsyrk over row
// chunks), its top two eigenvectors by subspace iteration from a fixed start with Rayleigh-Ritz,
// each axis's sign chosen so its largest-|.| component is positive. xy: n * 2 coordinates of the
// centred points; explained: each axis's eigenvalue over the total variance (0 when it is 0).
struct Pca2 {
  std::vector<float> xy;
  double explained[2] = {0, 0};
};
Pca2 pca2(const std::vector<float>& x, int64_t n, int64_t dim);

// Per point, the mean Euclidean distance to its k nearest other points (fewer when n <= k; 0 when
// alone), in the full space. Exact: candidates from blocked float GEMM distances, the nearest k
// of them re-measured in double (ties by index). Deterministic.
std::vector<float> knn_uniqueness(const std::vector<float>& x, int64_t n, int64_t dim, int k = 3);

}  // namespace app
