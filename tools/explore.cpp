// explore: the dataset and model explorer. Writes one folder that opens from disk in any browser
// (no server, no network): the class x split overview, image sizes and bad files, every image as
// a thumbnail in a filterable grid, image properties and their outliers, exact and near
// duplicates within and across splits, and with a checkpoint its predictions, evaluation,
// label-error candidates and an embedding map. docs/EXPLORE.md describes the files.
//
//   explore --data datasets/intel [--checkpoint runs/x/best.safetensors] --out runs/x/explore
//   explore --data D --split train=D/a --split test=D/b --out R
#include "tools/lib/explore.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "engine/error.h"
#include "tools/lib/cli.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Explore an image dataset (and a checkpoint's view of it): write a report folder that "
      "opens from disk in any browser"};
  app::ExploreOptions o;
  std::vector<std::string> split_flags;
  app.add_option("--data", o.data_dir,
                 "the dataset folder; its seg_train, seg_test and seg_pred (Kaggle's layout) "
                 "become the splits train, test and unlabelled unless --split is given");
  app.add_option("--split", split_flags,
                 "NAME=DIR: a split to explore (repeatable; replaces the folders found under "
                 "--data). A folder of class sub-folders is labelled, one of images unlabelled");
  app.add_option("--checkpoint", o.checkpoint,
                 "weights file written by train: adds predictions, evaluation, label-error "
                 "candidates and the model's embedding");
  app.add_option("--out", o.out, "the report folder to write")->required();
  app.add_flag("--overwrite", o.overwrite, "replace the report folder when it exists");
  app.add_option("--thumb-size", o.thumb_side, "thumbnail side in pixels")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "images per forward pass (as evaluate)")
      ->capture_default_str();
  app.add_option("--workers", o.workers, "image loading threads of the model pass")
      ->capture_default_str();
  app.add_option("--device", o.device, "auto | cpu | cuda (the model pass)")->capture_default_str();
  app.add_option("--backend", o.backend, "CUDA kernels: native | cudnn");
  app.add_flag("--strict", o.strict, "stop at the first bad image instead of listing it");
  app::one_line_errors(app, "explore");
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.data_dir.empty() && split_flags.empty()) {
      throw engine::Error("give --data DIR or at least one --split NAME=DIR");
    }
    for (const auto& s : split_flags) o.splits.push_back(app::parse_split_flag(s));
    for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(argv[i]);
    const std::string index = app::write_explore_report(o);
    std::printf("report: %s\n", index.c_str());
  } catch (const std::exception& e) {
    return app::report_failure("explore", e);
  }
  return 0;
}
