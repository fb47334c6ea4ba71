// evaluate: accuracy, per-class precision/recall/F1 and the confusion matrix of a checkpoint on a
// labelled image folder (one sub-folder per class, the checkpoint's classes), printed as a table
// and, with --json, written as {"accuracy", "per_class", "confusion_matrix", "classes", ...}.
//
//   evaluate --checkpoint runs/x/best.safetensors --data seg_test [--json eval.json]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "data/loader.h"
#include "engine/file_io.h"
#include "tools/lib/inference_flags.h"
#include "tools/lib/cli.h"

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return "[" + s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Evaluate a checkpoint written by train on a labelled image folder"};
  app::InferenceFlags f;
  std::string dir, json_path;
  f.add_to(app);
  app.add_option("--data", dir, "labelled images: DIR/<class>/*.jpg (Kaggle's seg_test)")
      ->required();
  app.add_option("--json", json_path, "also write the results as JSON here");
  app::one_line_errors(app, "evaluate");
  CLI11_PARSE(app, argc, argv);
  try {
    engine::Device dev;
    app::LoadedModel m = f.load(dev);
    data::ImageDataset ds = data::ImageDataset::folder(dir, f.scan());
    if (ds.classes() != m.info.classes) {
      throw engine::Error("the classes of '" + ds.report().root + "' " + join(ds.classes()) +
                          " differ from the checkpoint's " + join(m.info.classes));
    }
    std::printf("%s: %s\n", ds.report().root.c_str(), ds.report().summary().c_str());
    data::DataLoader loader(ds, app::inference_loader_options(m.info, f.batch_size, f.workers, f.strict, dev));
    app::EvalResult r = app::evaluate(*m.net, loader, int(m.info.classes.size()), dev);
    std::printf("%s", app::evaluation_table(r, m.info.classes).c_str());
    if (!json_path.empty()) {
      nlohmann::json j = app::evaluation_json(r, m.info.classes);
      j["checkpoint"] = f.checkpoint;
      j["data"] = ds.report().root;
      engine::write_file_atomic(json_path, j.dump(2) + "\n");
      std::printf("wrote %s\n", json_path.c_str());
    }
  } catch (const std::exception& e) {
    return app::report_failure("evaluate", e);
  }
  return 0;
}
