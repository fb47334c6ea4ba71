// predict: class probabilities for images with a trained checkpoint. Works on a folder (the
// unlabelled seg_pred, any nesting) or a single file; writes CSV
//   path,label,confidence,<one column per class>
// one row per image in sorted path order. Bad images are skipped with a warning (or, with
// --strict, stop the run), as the training loader does.
//
//   predict --checkpoint runs/x/best.safetensors --images DIR|FILE [--output preds.csv]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "data/loader.h"
#include "engine/file_io.h"
#include "tools/lib/inference_flags.h"
#include "tools/lib/cli.h"

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Predict the class of images with a checkpoint written by train"};
  app::InferenceFlags f;
  std::string images, output;
  f.add_to(app);
  app.add_option("--images", images, "a folder of images (searched recursively) or one image")
      ->required();
  app.add_option("--output", output, "CSV file to write (default: standard output)");
  app::one_line_errors(app, "predict");
  CLI11_PARSE(app, argc, argv);
  try {
    engine::Device dev;
    app::LoadedModel m = f.load(dev);
    data::ImageDataset ds = data::ImageDataset::unlabelled(images, f.scan());
    std::fprintf(stderr, "%s: %s\n", ds.report().root.c_str(), ds.report().summary().c_str());
    data::DataLoader loader(ds, app::inference_loader_options(m.info, f.batch_size, f.workers, f.strict, dev));
    const int nc = int(m.info.classes.size());
    std::vector<int64_t> kept;
    auto probs = app::predict_probabilities(*m.net, loader, nc, dev, &kept);

    std::string csv = "path,label,confidence";
    for (const auto& c : m.info.classes) csv += "," + csv_field(c);
    csv += "\n";
    char buf[32];
    for (size_t i = 0; i < probs.size(); ++i) {
      const auto& p = probs[i];
      int best = 0;
      for (int k = 1; k < nc; ++k) best = p[k] > p[best] ? k : best;
      csv += csv_field(ds.samples()[size_t(kept[i])].path) + "," + csv_field(m.info.classes[best]);
      std::snprintf(buf, sizeof buf, ",%.6f", double(p[best]));
      csv += buf;
      for (int k = 0; k < nc; ++k) {
        std::snprintf(buf, sizeof buf, ",%.6f", double(p[k]));
        csv += buf;
      }
      csv += "\n";
    }
    if (output.empty()) {
      std::fwrite(csv.data(), 1, csv.size(), stdout);
    } else {
      engine::write_file_atomic(output, csv);
      std::printf("wrote %zu predictions to %s\n", probs.size(), output.c_str());
    }
  } catch (const std::exception& e) {
    return app::report_failure("predict", e);
  }
  return 0;
}
