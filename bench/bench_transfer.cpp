// Eval-mode CPU inference of the transfer models (ResNet-50, MobileNetV2; 1000 classes, 224x224)
// and of every distinct convolution in them, one Google Benchmark case each, for
// bench/transfer_compare.py to set beside torchvision (bench/torch_transfer.py) and print ours /
// PyTorch.
//
//   model/<resnet50|mobilenet_v2>/batch:<1|32>/fold:<1|0>
//       The whole forward (input -> logits) under NoGradGuard, the model in eval() and frozen, with
//       BatchNorm folding on (conv with folded weights, layers/fused.h) or off (conv, then the
//       eval-mode BatchNorm op). The model is built inside the case, after the baseline.
//   conv/<net>/<cin>x<cout>@<hw>/k<k>_s<stride>[_dw]/batch:<n>
//       engine::conv2d(x, w, b, params) alone on one layer shape (with a bias, as the folded
//       model runs it); the `count` counter says how often the shape occurs in the model, so the
//       rows weighted by it add up to the model's convolution time.
//
// Each case runs --warmup untimed calls (scratch buffers, BLAS threads, the folded weights) and
// then --runs timed ones; the counters hold the median (median_ms, images_per_s or gflops). Memory
// is measured as bench_train_step does it: the process's peak resident set (ru_maxrss) above a
// baseline taken after start-up (libraries loaded, threads set) and before anything is built.
// Since that peak is process-wide, peak_above_baseline_mb is reported only by the first case a
// process runs: the driver runs one model case per process (--benchmark_filter). tensor_peak_mb
// splits that peak: see report_memory.
//
//   OMP_NUM_THREADS=2 bench_transfer --threads 2 [--warmup 2] [--runs 7]
//       [--benchmark_filter='^model/resnet50/batch:32/fold:1/'] [--benchmark_format=json]
//   bench_transfer --device cuda --backend native|cudnn --json-lines
//   --benchmark_filter='^model/...'
//       (tools/gpu_check.sh: the model cases on the GPU, one JSON line each)
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/storage.h"
#include "layers/fused.h"
#include "models/mobilenet_v2.h"
#include "models/resnet.h"

extern "C" void openblas_set_num_threads(int);

using namespace engine;

namespace {

int g_warmup = 2, g_runs = 7;
Device g_device = Device::cpu();  // --device cuda: the model cases on the GPU (--backend)
bool g_json_lines = false;        // --json-lines: one JSON line per model case (gpu_check.sh)
double g_baseline_rss_mb = 0;
bool g_first_case = true;  // the process's peak RSS belongs to the first case it runs

// The resident set now (VmRSS in /proc/self/status), in MB; as bench_train_step.cpp.
double current_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// Runs fn g_warmup times untimed, then once per benchmark iteration (the case sets
// Iterations(g_runs)), each timed on the wall clock; returns the median in seconds.
double median_time(benchmark::State& state, const std::function<void()>& fn) {
  for (int i = 0; i < g_warmup; ++i) fn();
  std::vector<double> times;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(dt);
    state.SetIterationTime(dt);
  }
  std::sort(times.begin(), times.end());
  const double med = times.empty() ? 0 : times[times.size() / 2];
  state.counters["median_ms"] = med * 1e3;
  return med;
}

// tensor_peak_mb is the CPU allocator's peak of live tensor bytes (weights, folded weights,
// activations); the rest of the peak above the baseline is the kernels' scratch buffers
// (kept per thread for reuse), OpenBLAS's buffers and heap slack, which the model case measures
// as what stays resident once its tensors are freed (kept_after_mb: kept_in_use_mb still
// allocated, kept_free_heap_mb freed but held by glibc).
void report_memory(benchmark::State& state) {
  state.counters["baseline_rss_mb"] = g_baseline_rss_mb;
  state.counters["peak_rss_mb"] = peak_rss_mb();
  if (g_first_case) {
    state.counters["peak_above_baseline_mb"] = peak_rss_mb() - g_baseline_rss_mb;
    state.counters["tensor_peak_mb"] = allocator_for(DeviceType::CPU)->peak_bytes() / 1048576.0;
  }
  g_first_case = false;
}

// ---- whole models ----

std::shared_ptr<TransferModel> build(const std::string& net, Generator& gen) {
  if (net == "resnet50") return std::make_shared<ResNet50>(ResNetOptions{}, gen);
  return std::make_shared<MobileNetV2>(MobileNetV2Options{}, gen);
}

// Runs a case's body; an exception (a shape error, out of memory) fails that case with its message.
void guarded(benchmark::State& state, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void run_model(benchmark::State& state, const std::string& net, int64_t batch, bool fold) {
  autograd::NoGradGuard no_grad;
  set_bn_folding(fold);
  Generator gen(0);
  std::shared_ptr<TransferModel> model = build(net, gen);
  model->eval();
  model->freeze();
  model->to(g_device);
  Tensor x = Tensor::rand({batch, 3, 224, 224}, gen).to(g_device);
  Tensor logits;
  // On a GPU the copy of the logits back waits for the forward to finish.
  const double med = median_time(state, [&] { logits = (*model)(x).to(Device::cpu()); });
  if (logits.shape() != Shape{batch, 1000}) state.SkipWithError("unexpected output shape");
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["images_per_s"] = med > 0 ? batch / med : 0;
  if (g_json_lines) {
    std::printf(
        "{\"impl\": \"engine\", \"device\": \"%s\", \"backend\": \"%s\", "
        "\"model\": \"%s\", \"batch\": %lld, \"fold\": %d, \"images_per_s\": %.4f}\n",
        g_device.str().c_str(), backend_name(backend_for(g_device)), net.c_str(),
        static_cast<long long>(batch), fold ? 1 : 0, med > 0 ? batch / med : 0.0);
    std::fflush(stdout);
  }
  const bool first = g_first_case;
  report_memory(state);
  model.reset();
  x = logits = Tensor();
  if (first) {
    // What stays resident, split by glibc: blocks still in use (the kernels' scratch buffers,
    // mmapped when large) and freed heap memory glibc keeps rather than returning to the system.
    const struct mallinfo2 mi = mallinfo2();
    state.counters["kept_after_mb"] = current_rss_mb() - g_baseline_rss_mb;
    state.counters["kept_in_use_mb"] = static_cast<double>(mi.uordblks + mi.hblkhd) / 1048576.0;
    state.counters["kept_free_heap_mb"] = static_cast<double>(mi.fordblks) / 1048576.0;
  }
}

void bench_model(benchmark::State& state, std::string net, int64_t batch, bool fold) {
  guarded(state, [&] { run_model(state, net, batch, fold); });
}

// ---- one convolution at a time ----

struct ConvShape {
  std::string net;
  int64_t cin, cout, hw, k, stride, groups;  // hw: the input's height and width
  bool operator<(const ConvShape& o) const {
    return std::tie(net, cin, cout, hw, k, stride, groups) <
           std::tie(o.net, o.cin, o.cout, o.hw, o.k, o.stride, o.groups);
  }
};

// Every convolution of the two models, in forward order, derived from their architectures
// (torchvision's: ResNet-50 v1.5 with the stride on the 3x3; MobileNetV2's (t, c, n, s) table).
// transfer_compare.py checks the distinct shapes and counts against torchvision's models.
std::vector<ConvShape> model_convs() {
  std::vector<ConvShape> v;
  v.push_back({"resnet50", 3, 64, 224, 7, 2, 1});
  int64_t in = 64, hw = 56;
  for (auto [width, blocks, stride] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}}) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t s = b == 0 ? stride : 1, out = width * Bottleneck::kExpansion;
      v.push_back({"resnet50", in, width, hw, 1, 1, 1});
      v.push_back({"resnet50", width, width, hw, 3, s, 1});
      v.push_back({"resnet50", width, out, hw / s, 1, 1, 1});
      if (b == 0) v.push_back({"resnet50", in, out, hw, 1, s, 1});
      in = out;
      hw /= s;
    }
  }
  v.push_back({"mobilenet_v2", 3, 32, 224, 3, 2, 1});
  in = 32, hw = 112;
  const int64_t table[][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (auto& [t, c, n, s0] : table) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t s = i == 0 ? s0 : 1, hidden = in * t;
      if (t != 1) v.push_back({"mobilenet_v2", in, hidden, hw, 1, 1, 1});
      v.push_back({"mobilenet_v2", hidden, hidden, hw, 3, s, hidden});
      hw /= s;
      v.push_back({"mobilenet_v2", hidden, c, hw, 1, 1, 1});
      in = c;
    }
  }
  v.push_back({"mobilenet_v2", 320, 1280, 7, 1, 1, 1});
  return v;
}

std::string conv_label(const ConvShape& c, int64_t batch) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "conv/%s/%lldx%lld@%lld/k%lld_s%lld%s/batch:%lld", c.net.c_str(),
                static_cast<long long>(c.cin), static_cast<long long>(c.cout),
                static_cast<long long>(c.hw), static_cast<long long>(c.k),
                static_cast<long long>(c.stride), c.groups > 1 ? "_dw" : "",
                static_cast<long long>(batch));
  return buf;
}

void run_conv(benchmark::State& state, const ConvShape& c, int64_t batch, int count) {
  autograd::NoGradGuard no_grad;
  Generator gen(1);
  Tensor x = Tensor::rand({batch, c.cin, c.hw, c.hw}, gen);
  Tensor w = Tensor::rand({c.cout, c.cin / c.groups, c.k, c.k}, gen, -0.1f, 0.1f);
  Tensor b = Tensor::rand({c.cout}, gen);
  Conv2dParams p;
  p.stride_h = p.stride_w = c.stride;
  p.pad_h = p.pad_w = (c.k - 1) / 2;
  p.groups = c.groups;
  Tensor y;
  const double med = median_time(state, [&] { y = conv2d(x, w, b, p); });
  const double flops = 2.0 * static_cast<double>(y.numel()) * (c.cin / c.groups) * c.k * c.k;
  const std::map<std::string, double> counters = {
      {"batch", batch},     {"cin", c.cin},   {"cout", c.cout},
      {"hw", c.hw},         {"k", c.k},       {"stride", c.stride},
      {"groups", c.groups}, {"count", count}, {"gflops", med > 0 ? flops / med / 1e9 : 0}};
  for (auto& [name, value] : counters) state.counters[name] = value;
  report_memory(state);
}

void bench_conv(benchmark::State& state, ConvShape c, int64_t batch, int count) {
  guarded(state, [&] { run_conv(state, c, batch, count); });
}

void register_all() {
  for (const char* net : {"resnet50", "mobilenet_v2"})
    for (int64_t batch : {1, 32})
      for (bool fold : {true, false}) {
        const std::string name = std::string("model/") + net + "/batch:" + std::to_string(batch) +
                                 "/fold:" + (fold ? "1" : "0");
        benchmark::RegisterBenchmark(name.c_str(), bench_model, std::string(net), batch, fold)
            ->UseManualTime()
            ->Iterations(g_runs)
            ->Unit(benchmark::kMillisecond);
      }
  std::vector<std::pair<ConvShape, int>> distinct;  // forward order of first occurrence
  std::map<ConvShape, size_t> index;
  for (const ConvShape& c : model_convs()) {
    auto [it, added] = index.emplace(c, distinct.size());
    if (added) distinct.push_back({c, 0});
    ++distinct[it->second].second;
  }
  for (int64_t batch : {1, 32})
    for (auto& [c, count] : distinct)
      benchmark::RegisterBenchmark(conv_label(c, batch).c_str(), bench_conv, c, batch, count)
          ->UseManualTime()
          ->Iterations(g_runs)
          ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  int threads = 0;
  for (int i = 0; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (has_value && std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[++i]);
    } else if (has_value && std::strcmp(argv[i], "--warmup") == 0) {
      g_warmup = std::max(0, std::atoi(argv[++i]));
    } else if (has_value && std::strcmp(argv[i], "--runs") == 0) {
      g_runs = std::max(1, std::atoi(argv[++i]));
    } else if (has_value && std::strcmp(argv[i], "--device") == 0) {
      g_device = Device::parse(argv[++i]);
    } else if (has_value && std::strcmp(argv[i], "--backend") == 0) {
      set_default_cuda_backend(parse_backend(argv[++i]));
    } else if (std::strcmp(argv[i], "--json-lines") == 0) {
      g_json_lines = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  if (threads > 0) {
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
  }
  register_all();
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  g_baseline_rss_mb = current_rss_mb();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
