// The transfer-learning side of a training run; see transfer.h.
#include "tools/lib/transfer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/transforms.h"
#include "engine/error.h"
#include "layers/layers.h"
#include "models/ensemble.h"

namespace app {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// A resumed run takes its weights from its state, so the files it started from may be gone;
// their metadata (preprocessing) is then read from the run's own last checkpoint.
std::string g_resume_fallback;

// What a weights file says about itself, checked against the model it must hold.
ModelInfo file_info(const std::string& path_in, const std::string& flag, const std::string& model) {
  std::string path = path_in;
  if (!g_resume_fallback.empty() && !std::filesystem::exists(path)) path = g_resume_fallback;
  ModelInfo info = parse_model_metadata(read_metadata(path), path);
  if (path != path_in) return info;
  if (info.model != model) {
    throw engine::Error(flag + " " + path + ": holds '" + info.model + "' weights, not '" + model +
                        "'");
  }
  return info;
}

// An ensemble member: a fine-tuned checkpoint of `model` on exactly the data's classes.
ModelInfo member_info(const std::string& path, const std::string& flag, const std::string& model,
                      const std::vector<std::string>& classes) {
  ModelInfo info = file_info(path, flag, model);
  if (!g_resume_fallback.empty() && !std::filesystem::exists(path)) return info;
  if (info.classes != classes) {
    throw engine::Error(flag + " " + path + ": not a " + model + " fine-tuned on this data: its " +
                        std::to_string(info.classes.size()) + " classes (" +
                        join(std::vector<std::string>(
                            info.classes.begin(),
                            info.classes.begin() + std::min<size_t>(6, info.classes.size()))) +
                        (info.classes.size() > 6 ? ", ..." : "") + ") are not the data's " +
                        std::to_string(classes.size()) + " (" + join(classes) + ")");
  }
  return info;
}

void load_into(engine::Module& net, engine::TensorMap state, const std::string& path) {
  try {
    net.load_state_dict(state, /*strict=*/true);
  } catch (const engine::Error& e) {
    throw engine::Error(path + ": " + e.what());
  }
}

}  // namespace

engine::Metadata read_metadata(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  ENGINE_CHECK(fs::is_regular_file(path, ec), path, ": no such file");
  const uint64_t size = fs::file_size(path, ec);
  std::ifstream f(path, std::ios::binary);
  uint64_t n = 0;
  ENGINE_CHECK(f && size >= 8 && f.read(reinterpret_cast<char*>(&n), 8), path,
               ": not a safetensors file (shorter than its 8-byte header length)");
  ENGINE_CHECK(n >= 2 && n <= 100000000 && n <= size - 8, path,
               ": not a safetensors file (header length ", n, " in a file of ", size, " bytes)");
  std::string header(n, '\0');
  ENGINE_CHECK(f.read(header.data(), std::streamsize(n)), path, ": truncated safetensors header");
  engine::Metadata meta;
  try {
    nlohmann::json j = nlohmann::json::parse(header);
    if (j.contains("__metadata__")) {
      for (auto& [k, v] : j.at("__metadata__").items()) meta[k] = v.get<std::string>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw engine::Error(path + ": not a safetensors file (header is not JSON with string "
                               "metadata: " + e.what() + ")");
  }
  return meta;
}

ModelInfo resolve_run_model(TrainConfig& cfg, const std::vector<std::string>& classes) {
  const std::string last = (std::filesystem::path(cfg.out) / "last.safetensors").string();
  g_resume_fallback = cfg.resume && std::filesystem::exists(last) ? last : "";
  ModelInfo info;
  info.model = cfg.model;
  info.classes = classes;
  info.width = cfg.width;
  if (!is_transfer_model(cfg.model)) {
    if (!cfg.weights.empty()) {
      ModelInfo w = file_info(cfg.weights, "--weights", cfg.model);
      if (cfg.image_size == 0) cfg.image_size = w.image_size;
      info.width = w.width;
      info.weights = cfg.weights;
    }
    if (cfg.image_size == 0) cfg.image_size = 64;
    if (cfg.resize_size < 0) cfg.resize_size = 0;
    info.image_size = int(cfg.image_size);
    info.resize_size = int(cfg.resize_size);
    return info;
  }
  // The preprocessing the weights were made with (torchvision's preset), unless --image-size asks
  // for the study's plain resize.
  std::optional<ModelInfo> from;
  if (cfg.model == "ensemble") {
    ModelInfo a = member_info(cfg.weights_a, "--weights-a", "resnet50", classes);
    ModelInfo b = member_info(cfg.weights_b, "--weights-b", "mobilenet_v2", classes);
    if (a.image_size != b.image_size || a.resize_size != b.resize_size || a.mean != b.mean ||
        a.std != b.std) {
      throw engine::Error("--weights-a " + cfg.weights_a + " and --weights-b " + cfg.weights_b +
                          " were trained on different inputs (image_size " +
                          std::to_string(a.image_size) + "/" + std::to_string(b.image_size) +
                          ", resize_size " + std::to_string(a.resize_size) + "/" +
                          std::to_string(b.resize_size) +
                          " or mean/std): an ensemble feeds both the same image");
    }
    from = a;
    info.weights = cfg.weights_a + " + " + cfg.weights_b;
  } else if (!cfg.weights.empty()) {
    from = file_info(cfg.weights, "--weights", cfg.model);
    info.weights = from->weights.empty() ? cfg.weights : from->weights;
  }
  if (cfg.image_size == 0) {
    cfg.image_size = from ? from->image_size : 224;
    if (cfg.resize_size < 0) cfg.resize_size = from ? from->resize_size : 256;
  }
  if (cfg.resize_size < 0) cfg.resize_size = 0;
  ENGINE_CHECK(cfg.resize_size == 0 || cfg.resize_size >= cfg.image_size, "--resize-size ",
               cfg.resize_size, " is smaller than the image size ", cfg.image_size);
  info.image_size = int(cfg.image_size);
  info.resize_size = int(cfg.resize_size);
  info.mean = from && from->mean ? *from->mean : data::kImageNetMean;
  info.std = from && from->std ? *from->std : data::kImageNetStd;
  return info;
}

void load_run_weights(engine::Module& net, const TrainConfig& cfg) {
  // A resumed run's weights come from its state (loaded after this): the files are not read.
  if (auto* e = dynamic_cast<engine::Ensemble*>(&net)) {
    if (!cfg.resume) {
      load_into(*e->modelA, engine::load_tensors(cfg.weights_a), cfg.weights_a);
      load_into(*e->modelB, engine::load_tensors(cfg.weights_b), cfg.weights_b);
    }
    e->freeze_members(cfg.train_heads);
    std::printf("ensemble: modelA from %s, modelB from %s, frozen%s; fc1 trains\n",
                cfg.weights_a.c_str(), cfg.weights_b.c_str(),
                cfg.train_heads ? " but their heads" : "");
    return;
  }
  auto* t = dynamic_cast<engine::TransferModel*>(&net);
  if (!cfg.weights.empty() && !cfg.resume) {
    engine::TensorMap state = engine::load_tensors(cfg.weights);
    if (t) {
      // A new head where the file's has another class count (ImageNet's 1000): the model's own,
      // freshly initialised tensors stand in for it, and the rest must match exactly.
      const std::string head = t->head_name() + ".";
      engine::TensorMap mine = net.state_dict();
      bool replaced = false;
      for (auto& [name, tensor] : mine) {
        if (name.rfind(head, 0) != 0) continue;
        auto it = state.find(name);
        if (it != state.end() && it->second.shape() == tensor.shape()) continue;
        state[name] = tensor;
        replaced = true;
      }
      for (auto it = state.begin(); it != state.end();) {
        it = it->first.rfind(head, 0) == 0 && !mine.count(it->first) ? state.erase(it) : ++it;
      }
      std::printf("weights: %s; %s\n", cfg.weights.c_str(),
                  replaced ? ("a new " + t->head_name() + " for the data's classes").c_str()
                           : "its head too (same classes)");
    }
    load_into(net, std::move(state), cfg.weights);
  }
  if (cfg.freeze_backbone && t) {
    engine::freeze_backbone(*t, cfg.unfreeze_from);
    std::printf("frozen: everything but %s%s (%lld of %lld parameters train)\n",
                t->head_name().c_str(),
                cfg.unfreeze_from.empty() ? "" : (" and " + cfg.unfreeze_from + " on").c_str(),
                static_cast<long long>(net.num_parameters(true)),
                static_cast<long long>(net.num_parameters()));
  }
}

void apply_frozen_bn(engine::Module& net, const std::string& mode) {
  if (mode != "eval") return;
  for (auto& [name, m] : net.named_modules()) {
    auto* bn = dynamic_cast<engine::BatchNorm2d*>(m);
    if (bn && !bn->weight.requires_grad() && !bn->bias.requires_grad()) bn->eval();
  }
}

}  // namespace app
