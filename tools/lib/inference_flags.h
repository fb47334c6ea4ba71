// The flags predict and evaluate share (checkpoint, device, backend, batch size, loading threads,
// strict) and what they set up from them: the model on its device and the scan options.
#pragma once
#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>

#include "data/dataset.h"
#include "tools/lib/evaluation.h"
#include "tools/lib/model_io.h"

namespace app {

struct InferenceFlags {
  std::string checkpoint, device = "auto", backend;
  int batch_size = 64, workers = 2;
  bool strict = false;

  void add_to(CLI::App& app) {
    app.add_option("--checkpoint", checkpoint, "weights file (last/best.safetensors)")->required();
    app.add_option("--device", device, "auto | cpu | cuda")->capture_default_str();
    app.add_option("--backend", backend, "CUDA kernels: native | cudnn");
    app.add_option("--batch-size", batch_size, "images per forward pass")->capture_default_str();
    app.add_option("--workers", workers, "image loading threads")->capture_default_str();
    app.add_flag("--strict", strict, "stop at the first bad image instead of skipping it");
  }
  // Checks the numeric flags, loads the checkpoint and moves its model to the chosen device.
  LoadedModel load(engine::Device& device_out) const {
    ENGINE_CHECK(batch_size >= 1, "--batch-size ", batch_size, ": must be at least 1");
    ENGINE_CHECK(workers >= 0 && workers <= 64, "--workers ", workers, ": must be in 0..64");
    LoadedModel m = load_weights(checkpoint);
    device_out = choose_device(device, backend);
    m.net->to(device_out);
    return m;
  }
  data::ScanOptions scan() const {
    data::ScanOptions s;
    s.strict = strict;
    s.threads = std::max(1, workers);
    return s;
  }
};

}  // namespace app
