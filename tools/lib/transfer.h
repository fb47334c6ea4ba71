// The transfer-learning side of a training run: what the weights files decide (input size,
// resize, normalisation), loading a converted backbone under a new head, the ensemble's members,
// freezing, and the mode of frozen BatchNorm layers.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor_io.h"
#include "layers/module.h"
#include "tools/lib/model_io.h"
#include "tools/lib/train_config.h"

namespace app {

// The __metadata__ of a safetensors file, read from its header alone (a weights file's tensors can
// be hundreds of megabytes). Throws naming the file when it is missing or not safetensors.
engine::Metadata read_metadata(const std::string& path);

// The ModelInfo of a new run on data with these classes, with cfg.image_size and cfg.resize_size
// resolved (0 / -1 become the weights file's values, or the model's defaults) and written back into
// cfg, so config.json and the training state record what the run used. Checks the weights files
// (--weights, --weights-a, --weights-b) against the model and the data; throws naming the file.
ModelInfo resolve_run_model(TrainConfig& cfg, const std::vector<std::string>& classes);

// Loads --weights (backbone strictly; the head when its class count matches the data, else the new
// head stays as initialised) or the ensemble's members, then freezes as the config says. Prints
// one line per decision. Throws naming the file and every missing, unexpected or mis-shaped key.
void load_run_weights(engine::Module& net, const TrainConfig& cfg);

// After net.train(): with mode "eval", every BatchNorm layer whose parameters are frozen goes back
// to eval mode (running statistics used, never updated); "train" leaves them training.
void apply_frozen_bn(engine::Module& net, const std::string& mode);

}  // namespace app
