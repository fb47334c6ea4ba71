// make_dataset: writes the synthetic stand-in for the Intel Image Classification dataset (six
// classes of procedurally drawn scenes, in the Kaggle folder layout), so that training and the
// tests can run without a download.
//
//   make_dataset --out DIR [--train-per-class 60] [--test-per-class 20] [--pred 20] [--size 150]
//                [--seed 0] [--quality 90]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "data/synthetic.h"
#include "tools/lib/cli.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Write a synthetic, procedurally drawn dataset in the Intel Image Classification "
      "layout (seg_train, seg_test, seg_pred)"};
  data::SyntheticOptions o;
  app.add_option("--out", o.out_dir,
                 "output directory (new, empty, or an earlier synthetic output)")
      ->required();
  app.add_option("--train-per-class", o.train_per_class, "training images per class")
      ->capture_default_str();
  app.add_option("--test-per-class", o.test_per_class, "test images per class")
      ->capture_default_str();
  app.add_option("--pred", o.pred_count, "unlabelled images in seg_pred")->capture_default_str();
  app.add_option("--size", o.size, "image side in pixels (8..4096)")->capture_default_str();
  // CLI11 would wrap "-4" into a huge unsigned seed; refuse it instead.
  app.add_option("--seed", o.seed, "seed: the same seed and options give the same images")
      ->capture_default_str()
      ->check([](const std::string& v) {
        return v.find('-') == std::string::npos ? std::string() : "must not be negative: " + v;
      });
  app.add_option("--quality", o.jpeg_quality, "JPEG quality (1..100)")->capture_default_str();
  app::one_line_errors(app, "make_dataset");
  CLI11_PARSE(app, argc, argv);

  // On a terminal one line is redrawn in place; in a log, a line at each quarter is enough.
  const bool tty = isatty(fileno(stdout)) != 0;
  int64_t last_quarter = -1;
  bool line_open = false;  // a redrawn progress line awaits its newline
  auto progress = [&](int64_t done, int64_t total) {
    if (tty) {
      std::printf("\rwriting images: %lld/%lld", static_cast<long long>(done),
                  static_cast<long long>(total));
      line_open = done != total;
      if (!line_open) std::printf("\n");
      std::fflush(stdout);
    } else if (int64_t quarter = done * 4 / total; quarter != last_quarter) {
      last_quarter = quarter;
      std::printf("writing images: %lld/%lld\n", static_cast<long long>(done),
                  static_cast<long long>(total));
      std::fflush(stdout);
    }
  };
  try {
    data::SyntheticSummary s = data::make_synthetic_dataset(o, progress);
    std::printf(
        "wrote %lld train, %lld test, %lld unlabelled images of %dx%d to %s (synthetic: "
        "procedurally drawn scenes)\n",
        static_cast<long long>(s.train), static_cast<long long>(s.test),
        static_cast<long long>(s.pred), o.size, o.size, o.out_dir.c_str());
  } catch (const std::exception& e) {
    if (line_open) std::printf("\n");  // end the half-drawn progress line first
    return app::report_failure("make_dataset", e);
  }
  return 0;
}
