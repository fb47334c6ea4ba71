// Model factory and weights files; see model_io.h.
#include "tools/lib/model_io.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/storage.h"
#include "models/custom_cnn.h"
#include "models/ensemble.h"

namespace app {
namespace {

using json = nlohmann::json;

std::array<float, 3> parse_triple(const std::string& text, const char* key,
                                  const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception&) {
    throw engine::Error(src + ": metadata '" + key + "' is not JSON: " + text);
  }
  if (!j.is_array() || j.size() != 3) {
    throw engine::Error(src + ": metadata '" + key + "' must be an array of 3 numbers, got " +
                        text);
  }
  std::array<float, 3> v{};
  for (int i = 0; i < 3; ++i) {
    if (!j[i].is_number()) throw engine::Error(src + ": metadata '" + key + "' holds a non-number");
    v[i] = j[i].get<float>();
  }
  return v;
}

std::string number(double v) {
  json j = v;
  return j.dump();  // shortest form that round-trips ("0.25", "1.0")
}

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"simple", "bn_dropout",   "sigmoid", "tanh",
                                                  "resnet50", "mobilenet_v2", "ensemble"};
  return names;
}

bool is_transfer_model(const std::string& model) {
  return model == "resnet50" || model == "mobilenet_v2" || model == "ensemble";
}

std::shared_ptr<engine::Module> build_model(const ModelInfo& info, engine::Generator& gen) {
  ENGINE_CHECK(!info.classes.empty(), "model '", info.model, "': no classes");
  if (is_transfer_model(info.model)) {
    ENGINE_CHECK(info.image_size >= 32, "model '", info.model, "' needs an image size of at ",
                 "least 32 (the network's total stride), got ", info.image_size);
    const int64_t classes = int64_t(info.classes.size());
    if (info.model == "resnet50")
      return std::make_shared<engine::ResNet50>(engine::ResNetOptions{.num_classes = classes}, gen);
    if (info.model == "ensemble") return std::make_shared<engine::Ensemble>(classes, gen);
    return std::make_shared<engine::MobileNetV2>(
        engine::MobileNetV2Options{.num_classes = classes}, gen);
  }
  engine::CustomCnnOptions o;
  o.variant = engine::parse_cnn_variant(info.model);
  o.num_classes = int64_t(info.classes.size());
  o.image_size = info.image_size;
  o.width = info.width;
  return std::make_shared<engine::CustomCnn>(o, gen);
}

engine::Metadata model_metadata(const ModelInfo& info) {
  engine::Metadata m;
  m["model"] = info.model;
  m["classes"] = json(info.classes).dump();
  m["image_size"] = std::to_string(info.image_size);
  m["width"] = number(info.width);
  if (info.mean) m["mean"] = json(*info.mean).dump();
  if (info.std) m["std"] = json(*info.std).dump();
  if (info.resize_size > 0) m["resize_size"] = std::to_string(info.resize_size);
  if (!info.weights.empty()) m["weights"] = info.weights;
  return m;
}

ModelInfo parse_model_metadata(const engine::Metadata& meta, const std::string& src) {
  auto need = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end()) {
      throw engine::Error(src + ": not a weights file of this engine: __metadata__ has no '" +
                          std::string(key) + "' (needed: model, classes, image_size)");
    }
    return it->second;
  };
  ModelInfo info;
  info.model = need("model");
  bool known = false;
  for (const auto& n : model_names()) known |= n == info.model;
  if (!known) throw engine::Error(src + ": unknown model '" + info.model + "' in metadata");
  try {
    json c = json::parse(need("classes"));
    // Iterating a JSON string or object would also yield names, so the array is checked.
    if (!c.is_array()) throw std::invalid_argument("not an array");
    for (const auto& x : c) info.classes.push_back(x.get<std::string>());
  } catch (const std::exception&) {
    throw engine::Error(src + ": metadata 'classes' must be a JSON array of names, got " +
                        need("classes"));
  }
  if (info.classes.empty()) throw engine::Error(src + ": metadata 'classes' is empty");
  try {
    size_t used = 0;
    info.image_size = std::stoi(need("image_size"), &used);
    if (used != need("image_size").size()) throw std::invalid_argument("trailing");
  } catch (const std::logic_error&) {
    throw engine::Error(src + ": metadata 'image_size' is not an integer: " + need("image_size"));
  }
  if (auto it = meta.find("width"); it != meta.end()) {
    try {
      info.width = std::stof(it->second);
    } catch (const std::logic_error&) {
      throw engine::Error(src + ": metadata 'width' is not a number: " + it->second);
    }
    // stof reads "inf" and "nan", which no model can be built with nor written back as JSON.
    if (!std::isfinite(info.width) || info.width <= 0) {
      throw engine::Error(src + ": metadata 'width' must be a positive finite number, got " +
                          it->second);
    }
  }
  if (auto it = meta.find("resize_size"); it != meta.end()) {
    try {
      size_t used = 0;
      info.resize_size = std::stoi(it->second, &used);
      if (used != it->second.size() || info.resize_size < 0) throw std::invalid_argument("bad");
    } catch (const std::logic_error&) {
      throw engine::Error(src + ": metadata 'resize_size' is not a non-negative integer: " +
                          it->second);
    }
    if (info.resize_size > 0 && info.resize_size < info.image_size) {
      throw engine::Error(src + ": metadata 'resize_size' " + it->second +
                          " is smaller than 'image_size' " + std::to_string(info.image_size));
    }
  }
  if (auto it = meta.find("weights"); it != meta.end()) info.weights = it->second;
  const bool has_mean = meta.count("mean"), has_std = meta.count("std");
  if (has_mean != has_std)
    throw engine::Error(src + ": metadata has one of 'mean'/'std' but not both");
  if (has_mean) {
    info.mean = parse_triple(meta.at("mean"), "mean", src);
    info.std = parse_triple(meta.at("std"), "std", src);
  }
  return info;
}

void save_weights(const std::string& path, engine::Module& model, const ModelInfo& info,
                  const engine::Metadata& extra) {
  engine::Metadata m = model_metadata(info);
  for (const auto& [k, v] : extra) m[k] = v;
  engine::save_tensors(path, model.state_dict(), m);
}

LoadedModel load_weights(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw engine::Error("checkpoint '" + path + "' does not exist");
  engine::Metadata meta;
  engine::TensorMap tensors = engine::load_tensors(path, &meta);
  LoadedModel out;
  out.info = parse_model_metadata(meta, path);
  // A strict load needs the model's state to be exactly the file's tensors. A model somewhat
  // larger is most likely the right one with one setting wrong, and the strict load's list of
  // mis-shaped keys says which; one far larger can only come from metadata that lies about the
  // sizes (image_size 65536, width 1000), which must not allocate gigabytes before the shapes
  // are compared. So the build may use 16 times the file's tensor bytes (doubling width and
  // image_size together is 16 times), plus 1 MiB for files holding almost nothing.
  size_t file_bytes = 0;
  for (const auto& [name, t] : tensors) file_bytes += t.nbytes();
  const size_t cap_bytes = 16 * file_bytes + (size_t(1) << 20);
  engine::Generator gen(0);
  try {
    {
      engine::AllocationCap cap(
          cap_bytes, "model '" + out.info.model + "' (image_size " +
                         std::to_string(out.info.image_size) + ", width " + number(out.info.width) +
                         ", " + std::to_string(out.info.classes.size()) +
                         " classes) is far larger than the " + std::to_string(file_bytes) +
                         " bytes of tensors in the file");
      out.net = build_model(out.info, gen);
    }
    out.net->load_state_dict(tensors, /*strict=*/true);
  } catch (const engine::Error& e) {
    throw engine::Error(path + ": " + e.what());
  }
  return out;
}

}  // namespace app
