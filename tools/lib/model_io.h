// Models as files: building a model by name, and weights files that carry what is needed to use
// them. A weights file is a safetensors file holding exactly the model's state_dict (PyTorch's
// keys, so torch can load it as it is) plus __metadata__:
//   model       the --model name (simple | bn_dropout | sigmoid | tanh | resnet50 | mobilenet_v2 |
//               ensemble)
//   classes     JSON array of class names in label order
//   image_size  input side, e.g. "64"
//   width       channel-width multiplier, e.g. "1" (optional, default 1; custom CNNs only)
//   mean, std   JSON arrays, present when the model normalises its input
//   resize_size optional: torchvision's preset (shorter side resized to it, then a centre crop of
//               image_size); absent or 0: a plain resize to image_size x image_size
//   weights     optional: where the weights came from ("IMAGENET1K_V1", "random:0")
// predict and evaluate need nothing else.
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/random.h"
#include "engine/tensor_io.h"
#include "layers/module.h"

namespace app {

struct ModelInfo {
  std::string model = "simple";
  std::vector<std::string> classes;
  int image_size = 64;
  float width = 1.f;
  std::optional<std::array<float, 3>> mean, std;  // both or neither
  int resize_size = 0;
  std::string weights;  // provenance, empty when unknown
};

// resnet50 | mobilenet_v2 | ensemble: the engine::TransferModel kinds (ImageNet backbones).
bool is_transfer_model(const std::string& model);

const std::vector<std::string>& model_names();
// A freshly initialised model (weights drawn from gen). Throws naming the unknown model or the
// bad size.
std::shared_ptr<engine::Module> build_model(const ModelInfo& info, engine::Generator& gen);

engine::Metadata model_metadata(const ModelInfo& info);
// Parses and checks the metadata of a weights file; `source` names the file in messages.
ModelInfo parse_model_metadata(const engine::Metadata& meta, const std::string& source);

// Writes state_dict + metadata atomically.
void save_weights(const std::string& path, engine::Module& model, const ModelInfo& info,
                  const engine::Metadata& extra = {});

struct LoadedModel {
  ModelInfo info;
  std::shared_ptr<engine::Module> net;
};
// Reads a weights file, builds its model and loads the weights strictly: a missing, unexpected
// or mis-shaped key is an error naming the file and the keys.
LoadedModel load_weights(const std::string& path);

}  // namespace app
