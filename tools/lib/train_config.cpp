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
#define APP_TRAIN_FROM_JSON(type, name, default_value, flag, help, on_resume) \
  c.name = j.at(#name).get<type>();
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
  ENGINE_CHECK(image_size >= 8 && image_size <= 1024 && image_size % 8 == 0, "--image-size ",
               image_size, ": must be a multiple of 8 between 8 and 1024 (three 2x2 poolings)");
  check_one_of("--device", device, {"auto", "cpu", "cuda"});
  if (!backend.empty()) check_one_of("--backend", backend, {"native", "cudnn"});
  ENGINE_CHECK(threads >= 0 && threads <= 1024, "--threads ", threads,
               ": must be 0 (all cores) or more");
  ENGINE_CHECK(workers >= 0 && workers <= 64, "--workers ", workers, ": must be between 0 and 64");
  ENGINE_CHECK(std::isfinite(width) && width > 0 && width <= 4, "--width ", width,
               ": must be in (0, 4]");
  ENGINE_CHECK(cache_mb >= 0, "--cache-mb ", cache_mb, ": must be 0 (off) or more");
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
