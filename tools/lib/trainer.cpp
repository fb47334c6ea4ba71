// The training run; see trainer.h. A Run holds what the settings build (data, model, optimizer,
// schedule, loaders); train() continues a TrainState epoch by epoch: train_batches() steps
// through one epoch's batches, finish_epoch() tests, schedules and writes the files.
#include "tools/lib/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "data/loader.h"
#include "data/sampler.h"
#include "engine/autograd.h"
#include "engine/file_io.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/scheduler.h"
#include "engine/storage.h"
#include "layers/layers.h"
#include "models/transfer.h"
#include "tools/lib/checkpoint_writer.h"
#include "tools/lib/evaluation.h"
#include "tools/lib/feature_cache.h"
#include "tools/lib/model_io.h"
#include "tools/lib/path_list.h"
#include "tools/lib/progress.h"
#include "tools/lib/train_state.h"
#include "tools/lib/transfer.h"

extern "C" void openblas_set_num_threads(int);

namespace app {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
// --cache-mb -1: the image cache's cap (and, on the CPU, only while it pays: probe_image_cache).
constexpr int64_t kAutoCacheMb = 2048;

namespace {

constexpr uint64_t kDropoutStream = 0xD0;
// The study's schedule: ReduceLROnPlateau(factor=0.2, patience=15) stepped every 50 batches.
constexpr int64_t kPlateauWindow = 50;

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  if (g_stop.exchange(true)) _exit(130);  // a second Ctrl-C quits at once (writes are atomic)
  static const char msg[] =
      "\ntrain: stopping after this step and saving a checkpoint (Ctrl-C again to quit now)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
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
  engine::PlateauOptions o;
  o.factor = 0.2;  // the study's setting
  if (c.scheduler == "plateau") {
    o.patience = 15;
    return std::make_unique<engine::WindowedPlateau>(opt, kPlateauWindow, o);
  }
  if (c.scheduler == "plateau-epoch") return std::make_unique<engine::ReduceLROnPlateau>(opt, o);
  if (c.scheduler == "step") return std::make_unique<engine::StepLR>(opt, 10, 0.1);
  if (c.scheduler == "cosine") return std::make_unique<engine::CosineAnnealingLR>(opt, c.epochs);
  return nullptr;
}

// The folder's images less those --exclude lists (counted in `excluded`).
data::ImageDataset scan_folder(const TrainConfig& c, const std::string& dir,
                               const std::unordered_set<std::string>& exclude, int64_t& excluded) {
  data::ScanOptions scan;
  scan.strict = c.strict;
  scan.threads = int(std::max<int64_t>(1, c.workers));
  data::ImageDataset ds = data::ImageDataset::folder(dir, scan);
  if (exclude.empty()) return ds;
  ds = ds.without(exclude, &excluded);
  if (ds.size() == 0) {
    throw engine::Error("--exclude '" + c.exclude + "' leaves no image in '" + ds.report().root +
                        "'");
  }
  return ds;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string csv_text(const json& history) {
  std::string s =
      "epoch,lr,train_loss,train_acc,test_loss,test_acc,epoch_seconds,images_per_second\n";
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

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What a run's settings build. Built in place (the loaders keep references to the datasets).
struct Run {
  TrainConfig cfg;
  std::unordered_set<std::string> exclude;  // --exclude's paths
  int64_t excluded_train = 0, excluded_test = 0;
  data::ImageDataset train_ds, test_ds;
  int num_classes;
  ModelInfo info;
  engine::Device dev;
  engine::Generator dropout_gen;
  std::shared_ptr<engine::Module> net;
  std::unique_ptr<engine::Optimizer> opt;
  std::unique_ptr<engine::LRScheduler> sched;
  std::unique_ptr<data::DataLoader> train_loader, test_loader;
  // With a frozen backbone: the head trains on cached features (the loaders then hand out
  // indices and labels only); null when the cache cannot be used.
  engine::TransferModel* tnet = nullptr;
  std::unique_ptr<FeatureCache> train_features, test_features;
  std::string state_file, last_file, best_file, csv_file;
  // Whether a training forward pass changes tensors the files hold (BatchNorm's running
  // statistics): the queued files must then be written before it starts, not only before the
  // optimizer's step.
  bool forward_changes_state = false;
  // --cache-mb -1 on the CPU: whether the image cache is worth its memory, decided from the
  // first steps of an epoch (see probe_image_cache).
  struct CacheProbe {
    bool pending = false;
    int64_t steps = 0, images = 0;
    Clock::time_point start;
    std::string note;  // printed after the epoch's progress bar
  } cache_probe;
  // Last so that it is destroyed first: the queued files are written before anything else goes.
  CheckpointWriter writer;

  explicit Run(const TrainConfig& c)
      : cfg(c),
        exclude(c.exclude.empty() ? std::unordered_set<std::string>() : read_path_list(c.exclude)),
        train_ds(scan_folder(c, c.train_dir, exclude, excluded_train)),
        test_ds(scan_folder(c, c.test_dir, exclude, excluded_test)),
        num_classes(int(train_ds.classes().size())),
        dropout_gen(data::mix_seed(c.seed, 0, kDropoutStream)),
        state_file(state_path(c.out)),
        last_file((fs::path(c.out) / "last.safetensors").string()),
        best_file((fs::path(c.out) / "best.safetensors").string()),
        csv_file((fs::path(c.out) / "metrics.csv").string()) {
    data::check_same_classes(train_ds, test_ds);
    std::printf("train: %s: %s\n", train_ds.report().root.c_str(),
                train_ds.report().summary().c_str());
    std::printf("test:  %s: %s\n", test_ds.report().root.c_str(),
                test_ds.report().summary().c_str());
    if (!cfg.exclude.empty()) {
      std::printf("excluded: %lld training and %lld test images of the %zu listed in %s\n",
                  static_cast<long long>(excluded_train), static_cast<long long>(excluded_test),
                  exclude.size(), cfg.exclude.c_str());
    }
    make_model();
    make_loaders();
  }

  TrainParts parts() { return {*net, *opt, sched.get(), dropout_gen}; }
  int64_t batches() const { return train_loader->batches_per_epoch(); }

 private:
  void make_model() {
    info = resolve_run_model(cfg, train_ds.classes());
    engine::Generator init_gen(cfg.seed);
    {
      // Parameters, their gradients and up to two optimizer buffers each: a model whose
      // parameters alone take a quarter of the machine's memory cannot train here. Settings (or a
      // resumed state's settings) that ask for one are refused before anything is allocated,
      // rather than ending in the out-of-memory killer.
      const size_t memory = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGE_SIZE));
      engine::AllocationCap cap(
          memory / 4, engine::detail::concat(
                          "model '", cfg.model, "' at --image-size ", cfg.image_size, " --width ",
                          cfg.width, " needs more than a quarter of this machine's ", memory >> 20,
                          " MiB of memory for its parameters; "
                          "lower --image-size or --width"));
      net = app::build_model(info, init_gen);
    }
    load_run_weights(*net, cfg);
    dev = choose_device(cfg.device, cfg.backend);
    net->to(dev);
    for (auto& [name, m] : net->named_modules()) {
      if (auto* d = dynamic_cast<engine::Dropout*>(m)) d->set_generator(dropout_gen);
    }
    opt = make_optimizer(cfg, net->named_parameters());
    sched = make_scheduler(cfg, *opt);
    const engine::NamedParams params = net->named_parameters();
    for (auto& [name, t] : net->state_dict()) {
      const bool is_param =
          std::any_of(params.begin(), params.end(), [&](const auto& p) { return p.first == name; });
      forward_changes_state = forward_changes_state || !is_param;
    }
  }

  void make_loaders() {
    data::LoaderOptions lo;
    lo.batch_size = int(cfg.batch_size);
    lo.threads = int(cfg.workers);
    lo.seed = cfg.seed;
    lo.order = cfg.balanced ? data::SampleOrder::Balanced : data::SampleOrder::Shuffle;
    lo.transform.image_size = int(cfg.image_size);
    lo.transform.resize_size = int(cfg.resize_size);
    if (info.mean) lo.transform.mean = *info.mean, lo.transform.std = *info.std;
    lo.transform.augment = cfg.augment;
    lo.cache_bytes = (cfg.cache_mb < 0 ? kAutoCacheMb : cfg.cache_mb) << 20;
    cache_probe.pending = cfg.cache_mb < 0 && dev.is_cpu();
    lo.pin_memory = dev.is_cuda();
    lo.strict = cfg.strict;
    train_loader = std::make_unique<data::DataLoader>(train_ds, lo);
    data::LoaderOptions to = lo;
    to.order = data::SampleOrder::Sequential;
    to.transform.augment = false;
    test_loader = std::make_unique<data::DataLoader>(test_ds, to);
  }

 public:
  // Features once per image when nothing below the head trains; says why not otherwise. Called
  // once the weights are final (after a resumed state is loaded).
  void make_feature_caches() {
    if (!is_transfer_model(cfg.model)) return;
    const std::string why_not = feature_cache_refusal(cfg);
    if (!why_not.empty()) {
      std::printf("feature cache: not used (%s)\n", why_not.c_str());
      return;
    }
    tnet = dynamic_cast<engine::TransferModel*>(net.get());
    ENGINE_CHECK(tnet, "feature cache: model '", cfg.model, "' has no backbone");
    data::LoaderOptions lo =
        inference_loader_options(info, int(cfg.batch_size), int(cfg.workers), cfg.strict, dev);
    const std::string key = feature_cache_key(*net, tnet->head_name(), cfg.model, lo.transform);
    const int64_t cap = cfg.feature_cache_mb << 20;
    std::printf(
        "feature cache: the backbone is frozen and sees the same pixels every epoch, so "
        "its %lld features per image are computed once (key %s)\n",
        static_cast<long long>(tnet->feature_dim()), key.c_str());
    auto backbone = [this](const engine::Tensor& x) { return tnet->features(x); };
    net->eval();
    auto make = [&](const char* split, const data::ImageDataset& ds) {
      const int64_t share = cap * int64_t(ds.size()) / int64_t(train_ds.size() + test_ds.size());
      auto c = std::make_unique<FeatureCache>(
          split, int64_t(ds.size()), tnet->feature_dim(), key, share,
          (fs::path(cfg.out) / "features" / (std::string(split) + "-" + key + ".f32")).string());
      data::DataLoader images(ds, lo);
      c->build(images, backbone, dev);
      return c;
    };
    train_features = make("train", train_ds);
    test_features = make("test", test_ds);
    train_loader = rebuilt_without_images(*train_loader, train_ds);
    test_loader = rebuilt_without_images(*test_loader, test_ds);
  }

 private:
  std::unique_ptr<data::DataLoader> rebuilt_without_images(const data::DataLoader& l,
                                                           const data::ImageDataset& ds) {
    data::LoaderOptions o = l.options();
    o.load_images = false;
    o.cache_bytes = 0;
    o.threads = 0;
    return std::make_unique<data::DataLoader>(ds, o);
  }
};

// One batch's logits and the labels they are for: from cached features when the run has them
// (a sample whose image failed to decode has no row and is left out), else from the images.
engine::Tensor batch_logits(Run& r, FeatureCache* cache, const data::Batch& b,
                            engine::Tensor& labels) {
  if (!cache) {
    labels = r.dev.is_cpu() ? b.labels : b.labels.to(r.dev);
    return (*r.net)(r.dev.is_cpu() ? b.images : b.images.to(r.dev));
  }
  std::vector<int64_t> kept;
  engine::Tensor f = cache->gather(b.indices, &kept);
  std::vector<int64_t> y;
  const auto all = b.labels.to_vector_i64();
  for (size_t i = 0, j = 0; i < b.indices.size() && j < kept.size(); ++i)
    if (b.indices[i] == kept[j]) y.push_back(all[i]), ++j;
  labels = engine::Tensor::from_vector_i64({int64_t(y.size())}, y);
  if (!r.dev.is_cpu()) f = f.to(r.dev), labels = labels.to(r.dev);
  return r.tnet->head(f);
}

// Where the run starts: the saved state when resuming, else a fresh state and config.json.
TrainState start_state(Run& r) {
  TrainState st;
  if (r.cfg.resume) {
    st = TrainState::load(r.state_file, r.parts());
    std::printf("resuming %s at epoch %lld, batch %lld/%lld\n", r.cfg.out.c_str(),
                static_cast<long long>(st.epoch + 1), static_cast<long long>(st.batch),
                static_cast<long long>(r.batches()));
  } else {
    std::error_code ec;
    fs::create_directories(r.cfg.out, ec);
    ENGINE_CHECK(!ec, "--out '", r.cfg.out, "': cannot create the folder: ", ec.message());
    engine::write_file_atomic((fs::path(r.cfg.out) / "config.json").string(),
                              r.cfg.to_json().dump(2) + "\n");
  }
  std::printf(
      "model %s (width %g, %d classes, %lldx%lld input) on %s; %lld train batches of %lld\n",
      r.cfg.model.c_str(), double(r.cfg.width), r.num_classes,
      static_cast<long long>(r.cfg.image_size), static_cast<long long>(r.cfg.image_size),
      r.dev.str().c_str(), static_cast<long long>(r.batches()),
      static_cast<long long>(r.cfg.batch_size));
  std::fflush(stdout);
  return st;
}

void report_non_finite(const Run& r, const TrainState& st, double loss, int64_t batch) {
  std::fprintf(stderr, "train: the loss is %s at epoch %lld, step %lld of %lld: training stopped. ",
               std::isnan(loss) ? "nan" : "infinite", static_cast<long long>(st.epoch + 1),
               static_cast<long long>(batch + 1), static_cast<long long>(r.batches()));
  if (st.history.empty()) {
    std::fprintf(stderr, "No epoch had finished, so no checkpoint was written. ");
  } else {
    std::fprintf(stderr, "The last good checkpoint is %s (epoch %lld). ", r.last_file.c_str(),
                 static_cast<long long>(st.history.size()));
  }
  std::fprintf(stderr, "A lower --lr usually helps.\n");
}

// The automatic image cache (--cache-mb -1) on the CPU. A cached image spares its decoding in
// later epochs, which on the CPU is worth little where decoding is cheap against the step (a
// 32x32 JPEG against a convolution network's forward and backward) while the cache holds the
// whole decoded dataset. After one untimed step and kCacheProbeSteps timed ones of an epoch, the
// loaders stop caching when decoding's CPU time per image is under kCacheMinDecodeShare of the
// step's wall time per image; the images cached by then are still served. An epoch shorter than
// the probe keeps the cache (a small dataset's cache is small).
constexpr int64_t kCacheProbeSteps = 8;
constexpr double kCacheMinDecodeShare = 0.05;

void probe_image_cache(Run& r, int64_t images) {
  Run::CacheProbe& p = r.cache_probe;
  if (p.steps++ == 0) {
    p.start = Clock::now();
    return;
  }
  p.images += images;
  if (p.steps <= kCacheProbeSteps) return;
  p.pending = false;
  const data::DataLoader::Stats s = r.train_loader->stats();
  if (s.decoded == 0 || p.images == 0) return;
  const double decode = s.decode_seconds / double(s.decoded);
  const double step = seconds_since(p.start) / double(p.images);
  const double share = decode / step;
  if (share >= kCacheMinDecodeShare) return;
  r.train_loader->stop_caching();
  r.test_loader->stop_caching();
  p.note = "image cache: off, decoding is cheap here (" + fmt("%.0f", decode * 1e6) +
           " us of CPU an image against " + fmt("%.1f", step * 1e3) +
           " ms of training: " + fmt("%.1f", share * 100) +
           "%); every epoch decodes its images (--cache-mb N keeps up to N MB of them)";
}

enum class EpochEnd { Finished, Interrupted, NonFinite };

// Trains the current epoch from st.batch on. On an interruption the state is saved at the step
// reached; a non-finite loss is reported before its backward pass, so it never touches the weights.
EpochEnd train_batches(Run& r, TrainState& st, Clock::time_point t_epoch, int64_t& steps_here) {
  r.net->train();
  apply_frozen_bn(*r.net, r.cfg.frozen_bn);
  r.train_loader->start_epoch(st.epoch, st.batch);
  r.cache_probe.steps = r.cache_probe.images = 0;  // a probe never spans two epochs
  Progress bar("epoch " + std::to_string(st.epoch + 1) + "/" + std::to_string(r.cfg.epochs),
               r.batches());
  data::Batch b;
  int64_t images_here = 0;
  EpochSums& sums = st.partial;
  while (r.train_loader->next(b)) {
    engine::Tensor y;
    // The epoch's files are written from the live tensors (no copies): the first step waits for
    // them before it changes any, which for a model without running statistics is only at the
    // optimizer's step, so the state file's write overlaps the first forward and backward.
    if (r.forward_changes_state) r.writer.wait();
    r.opt->zero_grad();
    engine::Tensor logits = batch_logits(r, r.train_features.get(), b, y);
    if (logits.size(0) == 0) continue;  // every image of the batch failed to decode
    engine::Tensor loss = engine::cross_entropy(logits, y);
    double lv = loss.item();
    if (st.epoch * r.batches() + b.number == r.cfg.nan_at_step) lv = std::nan("");
    if (!std::isfinite(lv)) {
      bar.finish();
      r.writer.wait();  // the last good checkpoint is on disk before it is named
      report_non_finite(r, st, lv, b.number);
      return EpochEnd::NonFinite;
    }
    loss.backward();
    r.writer.wait();  // also stops the run at once when a checkpoint failed to write
    r.opt->step();
    if (r.sched) r.sched->batch_end(lv);
    std::vector<int> pred = argmax_rows(logits, r.num_classes);
    std::vector<int64_t> labels = y.to_vector_i64();
    const int64_t n = int64_t(labels.size());
    for (int64_t i = 0; i < n; ++i) sums.correct += pred[size_t(i)] == labels[size_t(i)];
    sums.loss_sum += lv * double(n);
    sums.seen += n;
    images_here += n;
    ++steps_here;
    if (r.cache_probe.pending) probe_image_cache(r, n);
    bar.update(b.number + 1,
               "loss " + fmt("%.4f", sums.loss_sum / double(sums.seen)) + " acc " +
                   fmt("%.4f", double(sums.correct) / double(sums.seen)),
               images_here);
    if (g_stop.load() || steps_here == r.cfg.stop_after_steps) {
      bar.finish();
      const double dt = seconds_since(t_epoch);
      sums.seconds += dt;
      sums.train_seconds += dt;
      st.batch = b.number + 1;
      r.writer.wait();  // the last epoch's state must not land after this one
      st.save(r.state_file, r.cfg, r.parts());
      std::printf(
          "interrupted at epoch %lld, step %lld of %lld: state saved to %s\n"
          "resume with: train --out %s --resume\n",
          static_cast<long long>(st.epoch + 1), static_cast<long long>(st.batch),
          static_cast<long long>(r.batches()), r.state_file.c_str(), r.cfg.out.c_str());
      return EpochEnd::Interrupted;
    }
  }
  bar.finish();
  if (!r.cache_probe.note.empty()) {
    std::printf("%s\n", r.cache_probe.note.c_str());
    r.cache_probe.note.clear();
  }
  return EpochEnd::Finished;
}

// After an epoch's batches: the test pass, the schedule's epoch step, metrics.csv, the weights
// and the state (positioned at the next epoch), and the epoch's line. Returns the test accuracy.
//
// The files go to the background writer. The weights are final once the batches end, so
// last.safetensors is written while the test pass runs; best.safetensors, when the epoch is the
// best, is a hard link to it (the same bytes: both carry the epoch in their metadata); the
// state file follows. They are queued with the live tensors (device tensors as host copies),
// which nothing changes until train_batches' next step waits for the writer: the test pass only
// reads them. A copy of the weights and optimizer state would have let the writer run longer,
// but it cost their size in peak memory (266 MB more at full width with RMSprop).
double finish_epoch(Run& r, TrainState& st, Clock::time_point t_epoch) {
  const double train_dt = seconds_since(t_epoch);
  r.writer.wait();  // the previous epoch's files, long written: a failure there stops the run here
  const engine::TensorMap weights = for_writer(r.net->state_dict());
  engine::Metadata weights_meta = model_metadata(r.info);
  weights_meta["epoch"] = std::to_string(st.epoch + 1);
  r.writer.save(r.last_file, weights, weights_meta);
  EvalResult te = r.test_features
                      ? evaluate_batches(*r.net, *r.test_loader, r.num_classes,
                                         [&](const data::Batch& b, engine::Tensor& y) {
                                           return batch_logits(r, r.test_features.get(), b, y);
                                         })
                      : evaluate(*r.net, *r.test_loader, r.num_classes, r.dev);
  const double epoch_dt = seconds_since(t_epoch);
  const EpochSums& s = st.partial;
  const double seen = double(std::max<int64_t>(1, s.seen));
  json row = {{"epoch", st.epoch + 1},
              {"lr", s.lr},
              {"train_loss", s.loss_sum / seen},
              {"train_acc", double(s.correct) / seen},
              {"test_loss", te.loss},
              {"test_acc", te.accuracy},
              {"epoch_seconds", s.seconds + epoch_dt},
              {"images_per_second", double(s.seen) / std::max(s.train_seconds + train_dt, 1e-9)}};
  st.history.push_back(row);
  if (r.sched) r.sched->epoch_end(te.loss);
  engine::write_file_atomic(r.csv_file, csv_text(st.history));
  const bool improved = te.accuracy > st.best_accuracy;
  if (improved) {
    r.writer.save_as_link(r.best_file, r.last_file, weights, weights_meta);
    st.best_accuracy = te.accuracy;
    st.best_epoch = st.epoch + 1;
  }
  st.epoch += 1;
  st.batch = 0;
  st.partial = EpochSums{};
  engine::TensorMap state;
  engine::Metadata state_meta;
  st.contents(r.cfg, r.parts(), state, state_meta);
  for (auto& [k, t] : state) {
    // The model's tensors are those already queued for last.safetensors.
    t = k.rfind("model.", 0) == 0 ? weights.at(k.substr(6)) : for_writer(t);
  }
  r.writer.save(r.state_file, std::move(state), std::move(state_meta));
  std::printf(
      "epoch %lld/%lld: train loss %.4f acc %.4f | test loss %.4f acc %.4f%s | lr %.6g | "
      "%.1f s, %.1f img/s\n",
      static_cast<long long>(st.epoch), static_cast<long long>(r.cfg.epochs),
      row["train_loss"].get<double>(), row["train_acc"].get<double>(), te.loss, te.accuracy,
      improved ? " (best)" : "", row["lr"].get<double>(), row["epoch_seconds"].get<double>(),
      row["images_per_second"].get<double>());
  std::fflush(stdout);
  return te.accuracy;
}

// The checks a run makes before it reads any data.
void check_start(const TrainConfig& cfg) {
  cfg.validate();
  const std::string spath = state_path(cfg.out);
  if (cfg.resume) {
    ENGINE_CHECK(fs::exists(spath), "--resume: '", cfg.out, "' holds no training state (", spath,
                 " is missing); start a new run without --resume");
  } else {
    ENGINE_CHECK(
        !fs::exists(spath), "--out '", cfg.out,
        "' already holds a training run: continue it with --resume, or choose another --out");
  }
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

TrainConfig saved_config(const std::string& out_dir) {
  const std::string path = state_path(out_dir);
  ENGINE_CHECK(fs::exists(path), "--resume: '", out_dir, "' holds no training state (", path,
               " is missing); start a new run without --resume");
  return TrainState::load_config(path);
}

TrainOutcome train(TrainConfig cfg) {
  check_start(cfg);
  if (cfg.threads > 0) {
    omp_set_num_threads(int(cfg.threads));
    openblas_set_num_threads(int(cfg.threads));
  }
  Run r(cfg);
  TrainState st = start_state(r);
  r.make_feature_caches();
  TrainOutcome outcome;
  outcome.epochs_done = st.epoch;
  if (st.epoch >= cfg.epochs) {
    std::printf("nothing to do: %s already finished %lld epochs (raise --epochs to continue)\n",
                cfg.out.c_str(), static_cast<long long>(st.epoch));
    return outcome;
  }
  int64_t steps_here = 0;
  while (st.epoch < cfg.epochs) {
    const auto t_epoch = Clock::now();
    if (std::isnan(st.partial.lr)) st.partial.lr = r.opt->lr();
    const EpochEnd end = train_batches(r, st, t_epoch, steps_here);
    if (end != EpochEnd::Finished) {
      outcome.exit_code = end == EpochEnd::Interrupted ? 130 : 3;
      return outcome;
    }
    outcome.last_test_accuracy = finish_epoch(r, st, t_epoch);
    outcome.epochs_done = st.epoch;
    outcome.best_test_accuracy = st.best_accuracy;
    if (g_stop.load()) {
      r.writer.wait();
      std::printf("stopped after epoch %lld: checkpoint %s\nresume with: train --out %s --resume\n",
                  static_cast<long long>(st.epoch), r.last_file.c_str(), cfg.out.c_str());
      outcome.exit_code = 130;
      return outcome;
    }
  }
  r.writer.wait();
  std::printf(
      "done: %lld epochs; test accuracy %.4f (best %.4f at epoch %lld)\n"
      "checkpoints: %s, %s\nmetrics: %s\n",
      static_cast<long long>(cfg.epochs), outcome.last_test_accuracy, st.best_accuracy,
      static_cast<long long>(st.best_epoch), r.last_file.c_str(), r.best_file.c_str(),
      r.csv_file.c_str());
  if (r.train_features) {
    std::printf(
        "feature cache: %lld rows computed, %lld read from disk, %lld served to the head\n",
        static_cast<long long>(r.train_features->stats().computed +
                               r.test_features->stats().computed),
        static_cast<long long>(r.train_features->stats().loaded + r.test_features->stats().loaded),
        static_cast<long long>(r.train_features->stats().served + r.test_features->stats().served));
  }
  return outcome;
}

}  // namespace app
