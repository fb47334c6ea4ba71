// The dataset and model explorer behind `explore`: scans the splits of an image dataset, measures
// every image (size, brightness, contrast, blur, entropy, grayscale), finds exact and near
// duplicates within and across splits, optionally runs a checkpoint over everything (predictions,
// evaluation, label-error candidates, penultimate-layer embedding), and writes one folder that
// opens from disk in any browser: the page (tools/explore_page/, compiled in), its data
// (data/report.js) and the thumbnails packed into sprite sheets. docs/EXPLORE.md is the format.
#pragma once
#include <string>
#include <vector>

namespace app {

struct ExploreSplitSpec {
  std::string name, dir;
};

struct ExploreOptions {
  std::string data_dir;                  // the dataset's folder (provenance; default splits)
  std::vector<ExploreSplitSpec> splits;  // empty: find_explore_splits(data_dir)
  std::string checkpoint;                // optional weights file written by train
  std::string out;                       // the report folder
  bool overwrite = false;                // replace an existing report folder
  bool strict = false;                   // the first bad image is an error
  int workers = 2;                       // image decoding threads for the model pass
  int batch_size = 64;                   // evaluate's default, so predictions equal its own
  std::string device = "cpu", backend;   // for the model pass
  int thumb_side = 48;                   // thumbnail side in pixels
  std::string command;                   // the command line, for the report's provenance
};

// The Kaggle layout's seg_train, seg_test and seg_pred under data_dir (as "train", "test",
// "unlabelled"; whichever exist); when none exists, data_dir itself as one split named after it.
std::vector<ExploreSplitSpec> find_explore_splits(const std::string& data_dir);

// "NAME=DIR" as --split takes it. Throws naming the flag value when it is not of that form.
ExploreSplitSpec parse_split_flag(const std::string& value);

// Writes the report into o.out (built in a sibling folder and renamed into place at the end, so a
// failed or interrupted run never leaves half a report or removes the old one). Returns the path
// of index.html. Prints progress to stdout.
std::string write_explore_report(const ExploreOptions& o);

}  // namespace app
