// The training state file; see train_state.h.
#include "tools/lib/train_state.h"

#include <cmath>
#include <filesystem>

#include "engine/error.h"
#include "engine/tensor_io.h"

namespace app {
using json = nlohmann::json;

namespace {

// Format 2 added the batch-window plateau schedule as "plateau" (format 1's "plateau" is
// per-epoch, now "plateau-epoch") and the epoch's starting lr in "partial".
constexpr const char* kFormat = "engine-train-state-2";
constexpr const char* kFormat1 = "engine-train-state-1";

// The one format check: reads the file, returns its format version (1 or 2).
int read_state(const std::string& path, engine::TensorMap* tensors, engine::Metadata& meta) {
  engine::TensorMap t = engine::load_tensors(path, &meta);
  if (tensors) *tensors = std::move(t);
  auto it = meta.find("format");
  if (it != meta.end() && it->second == kFormat) return 2;
  if (it != meta.end() && it->second == kFormat1) return 1;
  throw engine::Error(path + ": not a training state file of this engine");
}

json meta_json(const engine::Metadata& meta, const std::string& key, const std::string& path) {
  auto it = meta.find(key);
  if (it == meta.end()) throw engine::Error(path + ": training state has no '" + key + "' entry");
  try {
    return json::parse(it->second);
  } catch (const json::exception&) {
    throw engine::Error(path + ": training state entry '" + key + "' is not valid JSON");
  }
}

// The entries under `prefix` with the prefix taken off.
template <class Map>
Map with_prefix(const Map& all, const std::string& prefix) {
  Map out;
  for (const auto& [k, v] : all) {
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  }
  return out;
}

}  // namespace

json EpochSums::to_json() const {
  json j = {{"loss_sum", loss_sum},
            {"correct", correct},
            {"seen", seen},
            {"seconds", seconds},
            {"train_seconds", train_seconds}};
  if (std::isfinite(lr)) j["lr"] = lr;
  return j;
}

EpochSums EpochSums::from_json(const json& j) {
  EpochSums p;
  p.loss_sum = j.at("loss_sum").get<double>();
  p.correct = j.at("correct").get<int64_t>();
  p.seen = j.at("seen").get<int64_t>();
  p.seconds = j.at("seconds").get<double>();
  p.train_seconds = j.at("train_seconds").get<double>();
  if (j.contains("lr")) p.lr = j.at("lr").get<double>();
  return p;
}

std::string state_path(const std::string& out_dir) {
  return (std::filesystem::path(out_dir) / "last.state.safetensors").string();
}

void TrainState::save(const std::string& path, const TrainConfig& cfg,
                      const TrainParts& parts) const {
  engine::TensorMap tensors;
  engine::Metadata meta;
  contents(cfg, parts, tensors, meta);
  engine::save_tensors(path, tensors, meta);
}

void TrainState::contents(const TrainConfig& cfg, const TrainParts& parts,
                          engine::TensorMap& tensors, engine::Metadata& meta) const {
  tensors.clear();
  meta.clear();
  for (auto& [k, t] : parts.net.state_dict()) tensors["model." + k] = t;
  engine::Metadata opt_meta;
  for (auto& [k, t] : parts.opt.state_dict(opt_meta)) tensors["optim." + k] = t;
  for (auto& [k, v] : opt_meta) meta["optim." + k] = v;
  meta["format"] = kFormat;
  meta["config"] = cfg.to_json().dump();
  meta["epoch"] = std::to_string(epoch);
  meta["batch"] = std::to_string(batch);
  meta["partial"] = partial.to_json().dump();
  meta["scheduler"] = parts.sched ? parts.sched->to_json() : "null";
  meta["dropout_generator"] =
      json{{"seed", parts.dropout_gen.seed()}, {"offset", parts.dropout_gen.offset()}}.dump();
  meta["history"] = history.dump();
  meta["best"] = json{{"accuracy", best_accuracy}, {"epoch", best_epoch}}.dump();
}

TrainState TrainState::load(const std::string& path, const TrainParts& parts) {
  engine::Metadata meta;
  engine::TensorMap tensors;
  read_state(path, &tensors, meta);
  try {
    parts.net.load_state_dict(with_prefix(tensors, "model."), true);
    parts.opt.load_state_dict(with_prefix(tensors, "optim."), with_prefix(meta, "optim."));
    if (parts.sched) parts.sched->from_json(meta.at("scheduler"));
  } catch (const engine::Error& e) {
    throw engine::Error(path + ": cannot resume: " + e.what());
  }
  json g = meta_json(meta, "dropout_generator", path);
  parts.dropout_gen.set_state(g.at("seed").get<uint64_t>(), g.at("offset").get<uint64_t>());
  TrainState st;
  st.epoch = std::stoll(meta.at("epoch"));
  st.batch = std::stoll(meta.at("batch"));
  st.partial = EpochSums::from_json(meta_json(meta, "partial", path));
  st.history = meta_json(meta, "history", path);
  json best = meta_json(meta, "best", path);
  st.best_accuracy = best.at("accuracy").get<double>();
  st.best_epoch = best.at("epoch").get<int64_t>();
  return st;
}

TrainConfig TrainState::load_config(const std::string& path) {
  engine::Metadata meta;
  const int version = read_state(path, nullptr, meta);
  TrainConfig c = TrainConfig::from_json(meta_json(meta, "config", path));
  if (version == 1 && c.scheduler == "plateau") c.scheduler = "plateau-epoch";
  return c;
}

}  // namespace app
