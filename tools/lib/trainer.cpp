// The training run; see trainer.h.
#include "tools/lib/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "data/loader.h"
#include "data/sampler.h"
#include "engine/autograd.h"
#include "engine/file_io.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/scheduler.h"
#include "layers/layers.h"
#include "tools/lib/evaluation.h"
#include "tools/lib/model_io.h"
#include "tools/lib/progress.h"

extern "C" void openblas_set_num_threads(int);

namespace app {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kStateFormat = "engine-train-state-1";
constexpr uint64_t kDropoutStream = 0xD0;

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  if (g_stop.exchange(true)) _exit(130);  // a second Ctrl-C quits at once (writes are atomic)
  static const char msg[] =
      "\ntrain: stopping after this step and saving a checkpoint (Ctrl-C again to quit now)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

void check_one_of(const std::string& flag, const std::string& v, std::set<std::string> allowed) {
  if (allowed.count(v)) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw engine::Error(flag + " " + (v.empty() ? "\"\"" : v) + ": must be one of " + list);
}

std::unique_ptr<engine::Optimizer> make_optimizer(const TrainConfig& c,
                                                   const engine::NamedParams& params) {
  if (c.optimizer == "rmsprop") {
    engine::RmspropOptions o;
    o.lr = c.lr;
    o.alpha = 0.9;  // the study's setting
    return std::make_unique<engine::RMSprop>(params, o);
  }
  if (c.optimizer == "sgd") return std::make_unique<engine::SGD>(params, c.lr);
  if (c.optimizer == "adam") {
    engine::AdamOptions o;
    o.lr = c.lr;
    return std::make_unique<engine::Adam>(params, o);
  }
  engine::AdamWOptions o;
  o.lr = c.lr;
  return std::make_unique<engine::AdamW>(params, o);
}

std::unique_ptr<engine::LRScheduler> make_scheduler(const TrainConfig& c, engine::Optimizer& opt) {
  if (c.scheduler == "plateau") {
    engine::PlateauOptions o;
    o.factor = 0.2;  // the study's setting
    return std::make_unique<engine::ReduceLROnPlateau>(opt, o);
  }
  if (c.scheduler == "step") return std::make_unique<engine::StepLR>(opt, 10, 0.1);
  if (c.scheduler == "cosine") return std::make_unique<engine::CosineAnnealingLR>(opt, c.epochs);
  return nullptr;
}

// Running sums of a part-done epoch.
struct Partial {
  double loss_sum = 0, seconds = 0, train_seconds = 0;
  int64_t correct = 0, seen = 0;
  json to_json() const {
    return {{"loss_sum", loss_sum}, {"correct", correct}, {"seen", seen}, {"seconds", seconds},
            {"train_seconds", train_seconds}};
  }
  static Partial from_json(const json& j) {
    Partial p;
    p.loss_sum = j.at("loss_sum").get<double>();
    p.correct = j.at("correct").get<int64_t>();
    p.seen = j.at("seen").get<int64_t>();
    p.seconds = j.at("seconds").get<double>();
    p.train_seconds = j.at("train_seconds").get<double>();
    return p;
  }
};

struct RunState {
  int64_t epoch = 0, batch = 0;  // where to continue
  Partial partial;
  json history = json::array();  // one object per finished epoch
  double best_accuracy = -1;
  int64_t best_epoch = 0;
};

std::string csv_text(const json& history) {
  std::string s = "epoch,lr,train_loss,train_acc,test_loss,test_acc,epoch_seconds,images_per_second\n";
  char buf[256];
  for (const auto& r : history) {
    std::snprintf(buf, sizeof buf, "%lld,%.8g,%.6f,%.6f,%.6f,%.6f,%.3f,%.2f\n",
                  static_cast<long long>(r.at("epoch").get<int64_t>()), r.at("lr").get<double>(),
                  r.at("train_loss").get<double>(), r.at("train_acc").get<double>(),
                  r.at("test_loss").get<double>(), r.at("test_acc").get<double>(),
                  r.at("epoch_seconds").get<double>(), r.at("images_per_second").get<double>());
    s += buf;
  }
  return s;
}

void save_state(const std::string& path, const TrainConfig& cfg, engine::Module& net,
                engine::Optimizer& opt, engine::LRScheduler* sched,
                const engine::Generator& dropout_gen, const RunState& st) {
  engine::TensorMap tensors;
  for (auto& [k, t] : net.state_dict()) tensors["model." + k] = t;
  engine::Metadata opt_meta;
  for (auto& [k, t] : opt.state_dict(opt_meta)) tensors["optim." + k] = t;
  engine::Metadata meta;
  for (auto& [k, v] : opt_meta) meta["optim." + k] = v;
  meta["format"] = kStateFormat;
  meta["config"] = cfg.to_json().dump();
  meta["epoch"] = std::to_string(st.epoch);
  meta["batch"] = std::to_string(st.batch);
  meta["partial"] = st.partial.to_json().dump();
  meta["scheduler"] = sched ? sched->to_json() : "null";
  meta["dropout_generator"] = json{{"seed", dropout_gen.seed()}, {"offset", dropout_gen.offset()}}.dump();
  meta["history"] = st.history.dump();
  meta["best"] = json{{"accuracy", st.best_accuracy}, {"epoch", st.best_epoch}}.dump();
  engine::save_tensors(path, tensors, meta);
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

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::atomic<bool>& stop_requested() { return g_stop; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string state_path(const std::string& out_dir) {
  return (fs::path(out_dir) / "last.state.safetensors").string();
}

json TrainConfig::to_json() const {
  return {{"model", model},         {"train_dir", train_dir}, {"test_dir", test_dir},
          {"epochs", epochs},       {"batch_size", batch_size}, {"lr", lr},
          {"optimizer", optimizer}, {"scheduler", scheduler}, {"image_size", image_size},
          {"balanced", balanced},   {"augment", augment},     {"device", device},
          {"backend", backend},     {"threads", threads},     {"workers", workers},
          {"seed", seed},           {"out", out},             {"width", width},
          {"strict", strict},       {"cache_mb", cache_mb},   {"plot", plot}};
}

TrainConfig TrainConfig::from_json(const json& j) {
  TrainConfig c;
  try {
    c.model = j.at("model");
    c.train_dir = j.at("train_dir");
    c.test_dir = j.at("test_dir");
    c.epochs = j.at("epochs");
    c.batch_size = j.at("batch_size");
    c.lr = j.at("lr");
    c.optimizer = j.at("optimizer");
    c.scheduler = j.at("scheduler");
    c.image_size = j.at("image_size");
    c.balanced = j.at("balanced");
    c.augment = j.at("augment");
    c.device = j.at("device");
    c.backend = j.at("backend");
    c.threads = j.at("threads");
    c.workers = j.at("workers");
    c.seed = j.at("seed");
    c.out = j.at("out");
    c.width = j.at("width");
    c.strict = j.at("strict");
    c.cache_mb = j.at("cache_mb");
    c.plot = j.at("plot");
  } catch (const json::exception& e) {
    throw engine::Error(std::string("saved training config is incomplete: ") + e.what());
  }
  return c;
}

void TrainConfig::validate() const {
  std::set<std::string> models(model_names().begin(), model_names().end());
  check_one_of("--model", model, models);
  ENGINE_CHECK(!train_dir.empty(), "--train-dir is required (a folder with one sub-folder per class)");
  ENGINE_CHECK(!test_dir.empty(), "--test-dir is required (a folder with the same class sub-folders)");
  ENGINE_CHECK(epochs >= 1 && epochs <= 100000, "--epochs ", epochs, ": must be at least 1");
  ENGINE_CHECK(batch_size >= 1 && batch_size <= 65536, "--batch-size ", batch_size,
               ": must be between 1 and 65536");
  ENGINE_CHECK(std::isfinite(lr) && lr > 0, "--lr ", lr, ": must be a positive number");
  check_one_of("--optimizer", optimizer, {"rmsprop", "sgd", "adam", "adamw"});
  check_one_of("--scheduler", scheduler, {"plateau", "step", "cosine", "none"});
  ENGINE_CHECK(image_size >= 8 && image_size <= 1024 && image_size % 8 == 0, "--image-size ",
               image_size, ": must be a multiple of 8 between 8 and 1024 (three 2x2 poolings)");
  check_one_of("--device", device, {"auto", "cpu", "cuda"});
  if (!backend.empty()) check_one_of("--backend", backend, {"native", "cudnn"});
  ENGINE_CHECK(threads >= 0 && threads <= 1024, "--threads ", threads, ": must be 0 (all cores) or more");
  ENGINE_CHECK(workers >= 0 && workers <= 64, "--workers ", workers, ": must be between 0 and 64");
  ENGINE_CHECK(std::isfinite(width) && width > 0 && width <= 4, "--width ", width,
               ": must be in (0, 4]");
  ENGINE_CHECK(cache_mb >= 0, "--cache-mb ", cache_mb, ": must be 0 (off) or more");
  ENGINE_CHECK(!out.empty(), "--out: must name a folder");
}

const std::vector<std::string>& resume_locked_settings() {
  static const std::vector<std::string> keys = {
      "model", "train_dir", "test_dir", "batch_size", "lr", "optimizer", "scheduler",
      "image_size", "balanced", "augment", "seed", "width"};
  return keys;
}

TrainConfig saved_config(const std::string& out_dir) {
  const std::string path = state_path(out_dir);
  ENGINE_CHECK(fs::exists(path), "--resume: '", out_dir, "' holds no training state (",
               path, " is missing); start a new run without --resume");
  engine::Metadata meta;
  engine::load_tensors(path, &meta);
  ENGINE_CHECK(meta.count("format") && meta["format"] == kStateFormat, path,
               ": not a training state file of this engine");
  return TrainConfig::from_json(meta_json(meta, "config", path));
}

TrainOutcome run_training(TrainConfig cfg) {
  cfg.validate();
  if (cfg.threads > 0) {
    omp_set_num_threads(int(cfg.threads));
    openblas_set_num_threads(int(cfg.threads));
  }
  const std::string spath = state_path(cfg.out);
  if (cfg.resume) {
    ENGINE_CHECK(fs::exists(spath), "--resume: '", cfg.out, "' holds no training state (", spath,
                 " is missing); start a new run without --resume");
  } else {
    ENGINE_CHECK(!fs::exists(spath), "--out '", cfg.out,
                 "' already holds a training run: continue it with --resume, or choose another --out");
  }

  // ---- data ----
  data::ScanOptions scan;
  scan.strict = cfg.strict;
  scan.threads = int(std::max<int64_t>(1, cfg.workers));
  data::ImageDataset train_ds = data::ImageDataset::folder(cfg.train_dir, scan);
  data::ImageDataset test_ds = data::ImageDataset::folder(cfg.test_dir, scan);
  data::check_same_classes(train_ds, test_ds);
  std::printf("train: %s: %s\n", train_ds.report().root.c_str(), train_ds.report().summary().c_str());
  std::printf("test:  %s: %s\n", test_ds.report().root.c_str(), test_ds.report().summary().c_str());
  const int num_classes = int(train_ds.classes().size());

  // ---- model, optimizer, schedule ----
  ModelInfo info;
  info.model = cfg.model;
  info.classes = train_ds.classes();
  info.image_size = int(cfg.image_size);
  info.width = cfg.width;
  engine::Generator init_gen(cfg.seed);
  std::shared_ptr<engine::Module> net = build_model(info, init_gen);
  const engine::Device dev = choose_device(cfg.device, cfg.backend);
  net->to(dev);
  engine::Generator dropout_gen(data::mix_seed(cfg.seed, 0, kDropoutStream));
  for (auto& [name, m] : net->named_modules()) {
    if (auto* d = dynamic_cast<engine::Dropout*>(m)) d->set_generator(dropout_gen);
  }
  engine::NamedParams params = net->named_parameters();
  std::unique_ptr<engine::Optimizer> opt = make_optimizer(cfg, params);
  std::unique_ptr<engine::LRScheduler> sched = make_scheduler(cfg, *opt);

  // ---- loaders ----
  data::LoaderOptions lo;
  lo.batch_size = int(cfg.batch_size);
  lo.threads = int(cfg.workers);
  lo.seed = cfg.seed;
  lo.order = cfg.balanced ? data::SampleOrder::Balanced : data::SampleOrder::Shuffle;
  lo.transform.image_size = int(cfg.image_size);
  lo.transform.augment = cfg.augment;
  lo.cache_bytes = cfg.cache_mb << 20;
  lo.pin_memory = dev.is_cuda();
  lo.strict = cfg.strict;
  data::DataLoader train_loader(train_ds, lo);
  data::LoaderOptions to = lo;
  to.order = data::SampleOrder::Sequential;
  to.transform.augment = false;
  data::DataLoader test_loader(test_ds, to);

  // ---- fresh run or resume ----
  RunState st;
  if (cfg.resume) {
    engine::Metadata meta;
    engine::TensorMap tensors = engine::load_tensors(spath, &meta);
    ENGINE_CHECK(meta.count("format") && meta["format"] == kStateFormat, spath,
                 ": not a training state file of this engine");
    engine::TensorMap model_t, opt_t;
    engine::Metadata opt_meta;
    for (auto& [k, t] : tensors) {
      if (k.rfind("model.", 0) == 0) model_t[k.substr(6)] = t;
      if (k.rfind("optim.", 0) == 0) opt_t[k.substr(6)] = t;
    }
    for (auto& [k, v] : meta) {
      if (k.rfind("optim.", 0) == 0) opt_meta[k.substr(6)] = v;
    }
    try {
      net->load_state_dict(model_t, true);
      opt->load_state_dict(opt_t, opt_meta);
      if (sched) sched->from_json(meta.at("scheduler"));
    } catch (const engine::Error& e) {
      throw engine::Error(spath + ": cannot resume: " + e.what());
    }
    json g = meta_json(meta, "dropout_generator", spath);
    dropout_gen.set_state(g.at("seed").get<uint64_t>(), g.at("offset").get<uint64_t>());
    st.epoch = std::stoll(meta.at("epoch"));
    st.batch = std::stoll(meta.at("batch"));
    st.partial = Partial::from_json(meta_json(meta, "partial", spath));
    st.history = meta_json(meta, "history", spath);
    json best = meta_json(meta, "best", spath);
    st.best_accuracy = best.at("accuracy").get<double>();
    st.best_epoch = best.at("epoch").get<int64_t>();
    std::printf("resuming %s at epoch %lld, batch %lld/%lld\n", cfg.out.c_str(),
                static_cast<long long>(st.epoch + 1), static_cast<long long>(st.batch),
                static_cast<long long>(train_loader.batches_per_epoch()));
  } else {
    std::error_code ec;
    fs::create_directories(cfg.out, ec);
    ENGINE_CHECK(!ec, "--out '", cfg.out, "': cannot create the folder: ", ec.message());
    engine::write_file_atomic((fs::path(cfg.out) / "config.json").string(),
                              cfg.to_json().dump(2) + "\n");
  }
  std::printf("model %s (width %g, %d classes, %lldx%lld input) on %s; %lld train batches of %lld\n",
              cfg.model.c_str(), double(cfg.width), num_classes,
              static_cast<long long>(cfg.image_size), static_cast<long long>(cfg.image_size),
              dev.str().c_str(), static_cast<long long>(train_loader.batches_per_epoch()),
              static_cast<long long>(cfg.batch_size));
  std::fflush(stdout);

  TrainOutcome outcome;
  outcome.epochs_done = st.epoch;
  if (st.epoch >= cfg.epochs) {
    std::printf("nothing to do: %s already finished %lld epochs (raise --epochs to continue)\n",
                cfg.out.c_str(), static_cast<long long>(st.epoch));
    return outcome;
  }

  const std::string last_path = (fs::path(cfg.out) / "last.safetensors").string();
  const std::string best_path = (fs::path(cfg.out) / "best.safetensors").string();
  const std::string csv_path = (fs::path(cfg.out) / "metrics.csv").string();
  const int64_t batches = train_loader.batches_per_epoch();
  int64_t steps_here = 0;

  for (; st.epoch < cfg.epochs; ++st.epoch) {
    const auto t_epoch = std::chrono::steady_clock::now();
    const double lr_epoch = opt->lr();
    net->train();
    train_loader.start_epoch(st.epoch, st.batch);
    Progress bar("epoch " + std::to_string(st.epoch + 1) + "/" + std::to_string(cfg.epochs),
                 batches);
    data::Batch b;
    int64_t images_here = 0;
    while (train_loader.next(b)) {
      engine::Tensor x = dev.is_cpu() ? b.images : b.images.to(dev);
      engine::Tensor y = dev.is_cpu() ? b.labels : b.labels.to(dev);
      opt->zero_grad();
      engine::Tensor logits = (*net)(x);
      engine::Tensor loss = engine::cross_entropy(logits, y);
      double lv = loss.item();
      const int64_t global_step = st.epoch * batches + b.number;
      if (global_step == cfg.nan_at_step) lv = std::nan("");
      if (!std::isfinite(lv)) {
        bar.finish();
        std::fprintf(stderr,
                     "train: the loss is %s at epoch %lld, step %lld of %lld: training stopped. ",
                     std::isnan(lv) ? "nan" : "infinite", static_cast<long long>(st.epoch + 1),
                     static_cast<long long>(b.number + 1), static_cast<long long>(batches));
        if (st.history.empty()) {
          std::fprintf(stderr, "No epoch had finished, so no checkpoint was written. ");
        } else {
          std::fprintf(stderr, "The last good checkpoint is %s (epoch %lld). ", last_path.c_str(),
                       static_cast<long long>(st.history.size()));
        }
        std::fprintf(stderr, "A lower --lr usually helps.\n");
        outcome.exit_code = 3;
        return outcome;
      }
      loss.backward();
      opt->step();
      std::vector<int> pred = argmax_rows(logits, num_classes);
      std::vector<int64_t> labels = b.labels.to_vector_i64();
      for (int64_t i = 0; i < b.size(); ++i) st.partial.correct += pred[i] == labels[i];
      st.partial.loss_sum += lv * double(b.size());
      st.partial.seen += b.size();
      images_here += b.size();
      ++steps_here;
      bar.update(b.number + 1,
                 "loss " + fmt("%.4f", st.partial.loss_sum / double(st.partial.seen)) + " acc " +
                     fmt("%.4f", double(st.partial.correct) / double(st.partial.seen)),
                 images_here);
      if (g_stop.load() || steps_here == cfg.stop_after_steps) {
        bar.finish();
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
        st.partial.seconds += dt;
        st.partial.train_seconds += dt;
        st.batch = b.number + 1;
        save_state(spath, cfg, *net, *opt, sched.get(), dropout_gen, st);
        std::printf("interrupted at epoch %lld, step %lld of %lld: state saved to %s\n"
                    "resume with: train --out %s --resume\n",
                    static_cast<long long>(st.epoch + 1), static_cast<long long>(st.batch),
                    static_cast<long long>(batches), spath.c_str(), cfg.out.c_str());
        outcome.exit_code = 130;
        return outcome;
      }
    }
    bar.finish();
    const double train_dt =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
    EvalResult te = evaluate(*net, test_loader, num_classes, dev);
    const double epoch_dt =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
    const double train_seconds = st.partial.train_seconds + train_dt;
    json row = {{"epoch", st.epoch + 1},
                {"lr", lr_epoch},
                {"train_loss", st.partial.loss_sum / double(std::max<int64_t>(1, st.partial.seen))},
                {"train_acc", double(st.partial.correct) / double(std::max<int64_t>(1, st.partial.seen))},
                {"test_loss", te.loss},
                {"test_acc", te.accuracy},
                {"epoch_seconds", st.partial.seconds + epoch_dt},
                {"images_per_second", double(st.partial.seen) / std::max(train_seconds, 1e-9)}};
    st.history.push_back(row);
    if (sched) sched->epoch_end(te.loss);
    engine::write_file_atomic(csv_path, csv_text(st.history));
    save_weights(last_path, *net, info);
    bool improved = te.accuracy > st.best_accuracy;
    if (improved) {
      save_weights(best_path, *net, info, {{"epoch", std::to_string(st.epoch + 1)}});
      st.best_accuracy = te.accuracy;
      st.best_epoch = st.epoch + 1;
    }
    RunState next = st;
    next.epoch = st.epoch + 1;
    next.batch = 0;
    next.partial = Partial{};
    save_state(spath, cfg, *net, *opt, sched.get(), dropout_gen, next);
    std::printf("epoch %lld/%lld: train loss %.4f acc %.4f | test loss %.4f acc %.4f%s | lr %.6g | "
                "%.1f s, %.1f img/s\n",
                static_cast<long long>(st.epoch + 1), static_cast<long long>(cfg.epochs),
                row["train_loss"].get<double>(), row["train_acc"].get<double>(), te.loss,
                te.accuracy, improved ? " (best)" : "", lr_epoch, row["epoch_seconds"].get<double>(),
                row["images_per_second"].get<double>());
    std::fflush(stdout);
    st.batch = 0;
    st.partial = Partial{};
    outcome.epochs_done = st.epoch + 1;
    outcome.last_test_accuracy = te.accuracy;
    if (g_stop.load()) {
      std::printf("stopped after epoch %lld: checkpoint %s\nresume with: train --out %s --resume\n",
                  static_cast<long long>(st.epoch + 1), last_path.c_str(), cfg.out.c_str());
      outcome.exit_code = 130;
      outcome.best_test_accuracy = st.best_accuracy;
      return outcome;
    }
  }
  outcome.best_test_accuracy = st.best_accuracy;
  if (!st.history.empty()) outcome.last_test_accuracy = st.history.back()["test_acc"].get<double>();
  std::printf("done: %lld epochs; test accuracy %.4f (best %.4f at epoch %lld)\n"
              "checkpoints: %s, %s\nmetrics: %s\n",
              static_cast<long long>(cfg.epochs), outcome.last_test_accuracy, st.best_accuracy,
              static_cast<long long>(st.best_epoch), last_path.c_str(), best_path.c_str(),
              csv_path.c_str());
  return outcome;
}

}  // namespace app
