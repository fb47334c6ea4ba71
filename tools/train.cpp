// train: trains one of the study's models on an image folder, as the study's PyTorch scripts did,
// with a progress bar, a test pass per epoch, metrics.csv, safe checkpoints, exact resume and
// plots. The run itself is tools/lib/trainer.cpp; this file makes the flags from the settings
// table (tools/lib/train_config.h) and parses them.
//
//   train --train-dir DIR --test-dir DIR [--model simple] [--epochs 10] [--out runs/NAME] ...
//   train --out runs/NAME --resume            (continues an interrupted or finished run)
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <type_traits>

#include "data/dataset.h"
#include "engine/error.h"
#include "models/custom_cnn.h"
#include "tools/lib/cli.h"
#include "tools/lib/model_io.h"
#include "tools/lib/train_config.h"
#include "tools/lib/trainer.h"
#include "tools/lib/transfer.h"

namespace {

std::string python() {
  const char* p = std::getenv("ENGINE_PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

// Draws OUT/accuracy.png and OUT/loss.png with tools/plot.py when matplotlib is there; otherwise
// says how.
void draw_plots(const std::string& out) {
  const std::string script = std::string(ENGINE_SOURCE_DIR) + "/tools/plot.py";
  const std::string cmd = python() + " " + script + " --run '" + out + "'";
  if (std::filesystem::exists(script) && std::filesystem::exists(python())) {
    std::fflush(stdout);
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) == 0) {
      std::printf("plots: %s/accuracy.png, %s/loss.png\n", out.c_str(), out.c_str());
      return;
    }
  }
  std::printf(
      "plots: not drawn (needs %s with matplotlib: apt-get install python3-matplotlib); "
      "draw them later with: %s\n",
      python().c_str(), cmd.c_str());
}

// One flag for a setting of APP_TRAIN_SETTINGS: a bool is a flag without a value (one named
// --no-... sets it to false), any other type takes a value and shows its default.
template <class T>
void add_setting(CLI::App& cli, const std::string& flag, T& value, const std::string& help) {
  if constexpr (std::is_same_v<T, bool>) {
    if (flag.rfind("--no-", 0) == 0) {
      cli.add_flag_callback(
          flag, [&value] { value = false; }, help);
    } else {
      cli.add_flag(flag, value, help);
    }
  } else {
    CLI::Option* o = cli.add_option(flag, value, help)->capture_default_str();
    // CLI11 would wrap a negative number around into a huge unsigned one.
    if constexpr (std::is_unsigned_v<T>) {
      o->check([](const std::string& v) {
        return v.find('-') == std::string::npos ? std::string() : "must not be negative: " + v;
      });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives every thread that allocates its own malloc arena, which keeps what it freed: the
  // loader's decoding threads held 7-11 MB that way in a 10,000-image run, at no speed gain over
  // two shared arenas (bench/RESULTS.md, loader and compute threads).
  mallopt(M_ARENA_MAX, 2);
  CLI::App app{
      "Train one of the study's models (its four CNNs, ResNet-50 or MobileNetV2 from converted "
      "torchvision weights, their ensemble) on an image folder (one sub-folder per class)"};
  app.get_formatter()->column_width(34);
  app::TrainConfig c;
  bool summary = false;
  // The settings' flags in the table's order, with --resume and --summary after --out, where the
  // help has always listed them.
  auto after = [&](const std::string& flag) {
    if (flag != "--out") return;
    app.add_flag("--resume", c.resume, "continue the run in --out where it stopped");
    app.add_flag("--summary", summary, "print the model's layers and parameters, then exit");
  };
#define APP_TRAIN_FLAG(type, name, default_value, flag, help, on_resume) \
  add_setting(app, flag, c.name, help);                                  \
  after(flag);
  APP_TRAIN_SETTINGS(APP_TRAIN_FLAG)
#undef APP_TRAIN_FLAG
  app.add_option("--stop-after-steps", c.stop_after_steps,
                 "testing: act as if interrupted after this many steps")
      ->group("");
  app.add_option("--nan-at-step", c.nan_at_step, "testing: make the loss NaN at this step")
      ->group("");
  app::one_line_errors(app, "train");
  CLI11_PARSE(app, argc, argv);

  try {
    if (summary) {
      c.validate();
      app::ModelInfo info = app::resolve_run_model(
          c, c.train_dir.empty() ? std::vector<std::string>(6, "class")
                                 : data::ImageDataset::folder(c.train_dir).classes());
      engine::Generator gen(c.seed);
      auto net = app::build_model(info, gen);
      std::printf("%s (%zu classes)\n%s", c.model.c_str(), info.classes.size(),
                  engine::summary(*net, {1, 3, c.image_size, c.image_size}).c_str());
      return 0;
    }
    if (c.resume) {
      c = app::resumed_config(app::saved_config(c.out), c,
                              [&app](const std::string& flag) { return app.count(flag) > 0; });
    }
    app::install_stop_handlers();
    app::TrainOutcome o = app::train(c);
    if (o.exit_code == 0 && c.plot && o.epochs_done > 0) draw_plots(c.out);
    return o.exit_code;
  } catch (const std::exception& e) {
    return app::report_failure("train", e);
  }
}
