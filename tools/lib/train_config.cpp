// The training settings' JSON, checks and resume rule, all driven by APP_TRAIN_SETTINGS.
#include "tools/lib/train_config.h"

#include <cmath>
#include <set>

#include "engine/error.h"
#include "tools/lib/model_io.h"

namespace app {
using json = nlohmann::json;

namespace {

struct SettingRow {
  const char* key;
  const char* flag;
  OnResume on_resume;
};

constexpr SettingRow kSettings[] = {
#define APP_TRAIN_ROW(type, name, default_value, flag, help, on_resume) \
  {#name, flag, OnResume::on_resume},
    APP_TRAIN_SETTINGS(APP_TRAIN_ROW)
#undef APP_TRAIN_ROW
};

void check_one_of(const std::string& flag, const std::string& v, std::set<std::string> allowed) {
  if (allowed.count(v)) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw engine::Error(flag + " " + (v.empty() ? "\"\"" : v) + ": must be one of " + list);
}

}  // namespace

json TrainConfig::to_json() const {
  json j;
#define APP_TRAIN_TO_JSON(type, name, default_value, flag, help, on_resume) j[#name] = name;
  APP_TRAIN_SETTINGS(APP_TRAIN_TO_JSON)
#undef APP_TRAIN_TO_JSON
  return j;
}

TrainConfig TrainConfig::from_json(const json& j) {
  TrainConfig c;
  try {
// A setting missing from the JSON keeps its default: runs saved before it existed behaved so.
#define APP_TRAIN_FROM_JSON(type, name, default_value, flag, help, on_resume) \
  if (j.contains(#name)) c.name = j.at(#name).get<type>();
    APP_TRAIN_SETTINGS(APP_TRAIN_FROM_JSON)
#undef APP_TRAIN_FROM_JSON
  } catch (const json::exception& e) {
    throw engine::Error(std::string("saved training config is incomplete: ") + e.what());
  }
  return c;
}

void TrainConfig::validate() const {
  std::set<std::string> models(model_names().begin(), model_names().end());
  check_one_of("--model", model, models);
  ENGINE_CHECK(!train_dir.empty(),
               "--train-dir is required (a folder with one sub-folder per class)");
  ENGINE_CHECK(!test_dir.empty(),
               "--test-dir is required (a folder with the same class sub-folders)");
  ENGINE_CHECK(epochs >= 1 && epochs <= 100000, "--epochs ", epochs, ": must be at least 1");
  ENGINE_CHECK(batch_size >= 1 && batch_size <= 65536, "--batch-size ", batch_size,
               ": must be between 1 and 65536");
  ENGINE_CHECK(std::isfinite(lr) && lr > 0, "--lr ", lr, ": must be a positive number");
  check_one_of("--optimizer", optimizer, {"rmsprop", "sgd", "adam", "adamw"});
  check_one_of("--scheduler", scheduler, {"plateau", "plateau-epoch", "step", "cosine", "none"});
  const bool transfer = is_transfer_model(model);
  if (image_size != 0 && !transfer) {
    ENGINE_CHECK(image_size >= 8 && image_size <= 1024 && image_size % 8 == 0, "--image-size ",
                 image_size, ": must be a multiple of 8 between 8 and 1024 (three 2x2 poolings)");
  }
  if (image_size != 0 && transfer) {
    ENGINE_CHECK(image_size >= 32 && image_size <= 1024, "--image-size ", image_size,
                 ": must be between 32 (", model, "'s total stride) and 1024");
  }
  ENGINE_CHECK(resize_size >= -1 && resize_size <= 4096, "--resize-size ", resize_size,
               ": must be -1 (the weights file's), 0 (plain resize) or a size up to 4096");
  ENGINE_CHECK(resize_size <= 0 || image_size == 0 || resize_size >= image_size, "--resize-size ",
               resize_size, " is smaller than --image-size ", image_size,
               " (the centre crop is taken after the resize)");
  check_one_of("--frozen-bn", frozen_bn, {"eval", "train"});
  const bool ensemble = model == "ensemble";
  ENGINE_CHECK(!freeze_backbone || (transfer && !ensemble), "--freeze-backbone: only for resnet50 ",
               "and mobilenet_v2 (an ensemble's members are always frozen), not --model ", model);
  ENGINE_CHECK(unfreeze_from.empty() || freeze_backbone,
               "--unfreeze-from needs --freeze-backbone (without it everything trains)");
  ENGINE_CHECK(ensemble || (weights_a.empty() && weights_b.empty() && !train_heads),
               "--weights-a, --weights-b and --train-heads are for --model ensemble");
  ENGINE_CHECK(!ensemble || (!weights_a.empty() && !weights_b.empty()),
               "--model ensemble needs --weights-a (a fine-tuned resnet50 checkpoint) and "
               "--weights-b (a fine-tuned mobilenet_v2 checkpoint)");
  ENGINE_CHECK(!ensemble || weights.empty(),
               "--model ensemble takes its members with --weights-a and --weights-b, not --weights");
  ENGINE_CHECK(feature_cache_mb >= 0, "--feature-cache-mb ", feature_cache_mb,
               ": must be 0 (always on disk) or more");
  check_one_of("--device", device, {"auto", "cpu", "cuda"});
  if (!backend.empty()) check_one_of("--backend", backend, {"native", "cudnn"});
  ENGINE_CHECK(threads >= 0 && threads <= 1024, "--threads ", threads,
               ": must be 0 (all cores) or more");
  ENGINE_CHECK(workers >= 0 && workers <= 64, "--workers ", workers, ": must be between 0 and 64");
  ENGINE_CHECK(std::isfinite(width) && width > 0 && width <= 4, "--width ", width,
               ": must be in (0, 4]");
  ENGINE_CHECK(cache_mb >= -1, "--cache-mb ", cache_mb,
               ": must be -1 (automatic), 0 (off) or a size in MB");
  ENGINE_CHECK(!out.empty(), "--out: must name a folder");
}

TrainConfig resumed_config(const TrainConfig& saved, const TrainConfig& given,
                           const std::function<bool(const std::string& flag)>& given_flag) {
  json s = saved.to_json();
  const json g = given.to_json();
  for (const SettingRow& row : kSettings) {
    const std::string key = row.key, flag = row.flag;
    switch (row.on_resume) {
      case OnResume::Keep:
        if (given_flag(flag) && s[key] != g[key]) {
          throw engine::Error(flag + " " + g[key].dump() + " differs from the run being resumed (" +
                              s[key].dump() + "): a resumed run keeps its settings");
        }
        break;
      case OnResume::Change:
        if (given_flag(flag)) s[key] = g[key];
        break;
      case OnResume::CommandLine:
        s[key] = g[key];
        break;
    }
  }
  TrainConfig r = TrainConfig::from_json(s);
  r.resume = true;
  r.stop_after_steps = given.stop_after_steps;
  r.nan_at_step = given.nan_at_step;
  return r;
}

}  // namespace app
