// A seeded synthetic stand-in for the Kaggle "Intel Image Classification" dataset, so that tests,
// CI and the quick-start demo have images without a download. Each of the six scene classes is
// drawn procedurally (shapes and colour palettes typical of the class, random placement, a little
// pixel noise): distinct enough between classes that a small CNN learns them in a few epochs,
// varied enough within a class that it has to generalise. Numbers measured on it say nothing about
// the real photographs.
//
// Layout written (as the Kaggle archive unpacks):
//   OUT/seg_train/seg_train/<class>/<k>.jpg
//   OUT/seg_test/seg_test/<class>/<k>.jpg
//   OUT/seg_pred/seg_pred/<k>.jpg          unlabelled, classes drawn at random
//   OUT/SYNTHETIC.txt                      what this is, the seed, the counts, the command
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/image.h"

namespace data {

// The six classes, sorted, as the real dataset's folder names.
extern const std::vector<std::string> kSceneClasses;

// One scene of class kSceneClasses[class_index], size x size pixels. Pixels depend only on
// (class_index, seed, size): the same arguments give byte-identical images from the same build.
// Throws engine::Error on a class index out of range or a size outside 8..4096.
Image draw_scene(int class_index, uint64_t seed, int size = 150);

struct SyntheticOptions {
  std::string out_dir;
  int train_per_class = 60;
  int test_per_class = 20;
  int pred_count = 20;
  int size = 150;  // images are size x size
  uint64_t seed = 0;
  int jpeg_quality = 90;
};

struct SyntheticSummary {
  int64_t train = 0, test = 0, pred = 0;
};

// Writes the dataset described above, each file atomically; train, test and pred images use
// disjoint per-image seeds. Refuses (engine::Error naming the path) to write into an existing
// non-empty directory that has no SYNTHETIC.txt, so a user's data is never overwritten; over a
// previous synthetic output it regenerates, removing numbered images the new counts no longer
// include. progress, when given, is called after each image with (images done, total).
SyntheticSummary make_synthetic_dataset(
    const SyntheticOptions& options,
    const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace data
