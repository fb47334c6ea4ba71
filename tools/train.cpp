// train: trains one of the study's models on an image folder, as the study's PyTorch scripts did,
// with a progress bar, a test pass per epoch, metrics.csv, safe checkpoints, exact resume and
// plots. The run itself is tools/lib/trainer.cpp; this file parses flags.
//
//   train --train-dir DIR --test-dir DIR [--model simple] [--epochs 10] [--out runs/NAME] ...
//   train --out runs/NAME --resume            (continues an interrupted or finished run)
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "data/dataset.h"
#include "engine/error.h"
#include "models/custom_cnn.h"
#include "tools/lib/model_io.h"
#include "tools/lib/trainer.h"
#include "tools/lib/cli.h"

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
  std::printf("plots: not drawn (needs %s with matplotlib: apt-get install python3-matplotlib); "
              "draw them later with: %s\n", python().c_str(), cmd.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train one of the study's CNNs on an image folder (one sub-folder per class)"};
  app.get_formatter()->column_width(34);
  app::TrainConfig c;
  bool summary = false;
  app.add_option("--model", c.model, "simple | bn_dropout | sigmoid | tanh")->capture_default_str();
  app.add_option("--train-dir", c.train_dir,
                 "training images: DIR/<class>/*.jpg (Kaggle's seg_train, either level)");
  app.add_option("--test-dir", c.test_dir, "test images, same classes (Kaggle's seg_test)");
  app.add_option("--epochs", c.epochs, "epochs to train (with --resume: the new total)")
      ->capture_default_str();
  app.add_option("--batch-size", c.batch_size, "images per step")->capture_default_str();
  app.add_option("--lr", c.lr, "learning rate")->capture_default_str();
  app.add_option("--optimizer", c.optimizer, "rmsprop (alpha 0.9) | sgd | adam | adamw")
      ->capture_default_str();
  app.add_option("--scheduler", c.scheduler,
                 "plateau (x0.2 when the test loss stalls 10 epochs) | step (x0.1 every 10) | "
                 "cosine | none")
      ->capture_default_str();
  app.add_option("--image-size", c.image_size, "images are resized to this side (multiple of 8)")
      ->capture_default_str();
  app.add_flag("--balanced", c.balanced, "sample classes equally often (inverse-frequency weights)");
  app.add_flag("--augment", c.augment, "random resized crops and horizontal flips");
  app.add_option("--device", c.device, "auto | cpu | cuda (auto: cuda when usable)")
      ->capture_default_str();
  app.add_option("--backend", c.backend, "CUDA kernels: native | cudnn (default: cudnn if built)");
  app.add_option("--threads", c.threads, "compute threads (0: every core)")->capture_default_str();
  app.add_option("--workers", c.workers, "image loading threads")->capture_default_str();
  app.add_option("--seed", c.seed, "seed for weights, order, augmentation and dropout")
      ->capture_default_str()
      ->check([](const std::string& v) {
        return v.find('-') == std::string::npos ? std::string() : "must not be negative: " + v;
      });
  app.add_option("--out", c.out, "run folder: checkpoints, metrics.csv, plots")->capture_default_str();
  app.add_flag("--resume", c.resume, "continue the run in --out where it stopped");
  app.add_flag("--summary", summary, "print the model's layers and parameters, then exit");
  app.add_option("--width", c.width, "channel-width multiplier (small values for quick runs)")
      ->capture_default_str();
  app.add_flag("--strict", c.strict, "stop at the first bad image instead of skipping it");
  app.add_option("--cache-mb", c.cache_mb, "memory for decoded images (0: no cache)")
      ->capture_default_str();
  bool no_plot = false;
  app.add_flag("--no-plot", no_plot, "do not draw the plots at the end");
  app.add_option("--stop-after-steps", c.stop_after_steps,
                 "testing: act as if interrupted after this many steps")
      ->group("");
  app.add_option("--nan-at-step", c.nan_at_step, "testing: make the loss NaN at this step")->group("");
  app::one_line_errors(app, "train");
  CLI11_PARSE(app, argc, argv);
  c.plot = !no_plot;

  try {
    if (summary) {
      app::ModelInfo info;
      info.model = c.model;
      info.image_size = int(c.image_size);
      info.width = c.width;
      if (!c.train_dir.empty()) {
        info.classes = data::ImageDataset::folder(c.train_dir).classes();
      } else {
        info.classes = std::vector<std::string>(6, "class");
      }
      c.validate();
      engine::Generator gen(c.seed);
      auto net = app::build_model(info, gen);
      std::printf("%s (%zu classes)\n%s", c.model.c_str(), info.classes.size(),
                  engine::summary(*net, {1, 3, c.image_size, c.image_size}).c_str());
      return 0;
    }
    if (c.resume) {
      // A resumed run keeps the settings that shape its results; the rest may change.
      app::TrainConfig saved = app::saved_config(c.out);
      nlohmann::json s = saved.to_json(), g = c.to_json();
      const std::map<std::string, std::string> flag = {
          {"model", "--model"}, {"train_dir", "--train-dir"}, {"test_dir", "--test-dir"},
          {"epochs", "--epochs"}, {"batch_size", "--batch-size"}, {"lr", "--lr"},
          {"optimizer", "--optimizer"}, {"scheduler", "--scheduler"},
          {"image_size", "--image-size"}, {"balanced", "--balanced"}, {"augment", "--augment"},
          {"device", "--device"}, {"backend", "--backend"}, {"threads", "--threads"},
          {"workers", "--workers"}, {"seed", "--seed"}, {"width", "--width"},
          {"strict", "--strict"}, {"cache_mb", "--cache-mb"}};
      const auto& locked = app::resume_locked_settings();
      for (const auto& [key, name] : flag) {
        if (app.count(name) == 0) continue;
        if (std::find(locked.begin(), locked.end(), key) != locked.end()) {
          if (s[key] != g[key]) {
            throw engine::Error(name + " " + g[key].dump() + " differs from the run being resumed (" +
                                s[key].dump() + "): a resumed run keeps its settings");
          }
        } else {
          s[key] = g[key];
        }
      }
      s["plot"] = c.plot;
      app::TrainConfig r = app::TrainConfig::from_json(s);
      r.out = c.out;
      r.resume = true;
      r.stop_after_steps = c.stop_after_steps;
      r.nan_at_step = c.nan_at_step;
      c = r;
    }
    app::install_stop_handlers();
    app::TrainOutcome o = app::run_training(c);
    if (o.exit_code == 0 && c.plot && o.epochs_done > 0) draw_plots(c.out);
    return o.exit_code;
  } catch (const std::exception& e) {
    return app::report_failure("train", e);
  }
}
