// Times one training step (forward, cross-entropy, backward, RMSprop update) of a custom CNN on
// the CPU or a GPU and prints one JSON line: median seconds per step, images/s and peak memory
// (resident for the CPU, the caching allocator's peak for CUDA). One model per process, so that
// the peak is that model's. bench/cpu_train_step.py runs this beside the same step in PyTorch and
// prints the ratio; tools/gpu_check.sh does the same on a GPU with bench/torch_train_step.py.
//
//   bench_train_step --model simple --batch 8 --steps 5 --threads 2 [--freeze-convs 1]
//   bench_train_step --model simple --batch 64 --steps 20 --device cuda --backend native|cudnn
//
// Memory on the CPU is reported twice: the whole process's peak resident set (peak_rss_mb) and
// that peak above a baseline taken after start-up (the libraries loaded, threads set) and before
// the model is built (peak_above_baseline_mb), which torch_train_step.py measures the same way:
// what the model and its step cost, without either side's fixed start-up cost.
//
// On CUDA the steps are queued back to back as in training (no synchronisation inside a step, so
// the per-phase times are not reported) after 3 warm-up steps, and the time of all of them,
// to the end of the last, is divided by their number.
//
// --freeze-convs 1 freezes seq1..seq3 (as a frozen backbone): the step then runs no backward
// through the convolutions at all, which the printed backward_nodes count shows.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/optim.h"
#include "models/custom_cnn.h"

extern "C" void openblas_set_num_threads(int);

// The resident set now (VmRSS in /proc/self/status), in MB; 0 where there is no /proc.
static double current_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

int main(int argc, char** argv) {
  std::string model = "simple";
  int batch = 8, steps = 5, threads = 0, size = 64;
  float width = 1.f;
  bool freeze = false;
  std::string device = "cpu", backend = "";
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::printf(
          "usage: bench_train_step [--model simple|bn_dropout|sigmoid|tanh] [--batch 8]\n"
          "         [--steps 5] [--threads N] [--image-size 64] [--width 1] [--freeze-convs 0|1]\n"
          "         [--device cpu|cuda] [--backend native|cudnn]\n"
          "Times one training step of a custom CNN and prints one JSON line (median seconds per\n"
          "step, images/s, peak memory).\n");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_train_step: %s needs a value (try --help)\n", k.c_str());
      return 2;
    }
    const std::string v = argv[i + 1];
    if (k == "--model")
      model = v;
    else if (k == "--batch")
      batch = std::stoi(v);
    else if (k == "--steps")
      steps = std::stoi(v);
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--image-size")
      size = std::stoi(v);
    else if (k == "--width")
      width = std::stof(v);
    else if (k == "--freeze-convs")
      freeze = v == "1";
    else if (k == "--device")
      device = v;
    else if (k == "--backend")
      backend = v;
    else {
      std::fprintf(stderr, "bench_train_step: unknown flag %s (try --help)\n", k.c_str());
      return 2;
    }
  }
  try {
    if (threads > 0) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
    }
    const double baseline_rss_mb = current_rss_mb();
    using namespace engine;
    const Device dev = Device::parse(device);
    if (!backend.empty()) set_default_cuda_backend(parse_backend(backend));
    CustomCnnOptions o;
    o.variant = parse_cnn_variant(model);
    o.image_size = size;
    o.width = width;
    Generator gen(1);
    CustomCnn net(o, gen);
    net.to(dev);
    net.train();
    if (freeze) {
      for (auto& [name, p] : net.named_parameters()) {
        if (name.rfind("seq", 0) == 0) {
          Tensor h = p;
          h.set_requires_grad(false);
        }
      }
    }
    NamedParams trainable;
    for (auto& np : net.named_parameters())
      if (np.second.requires_grad()) trainable.push_back(np);
    RmspropOptions ro;
    ro.lr = 1e-4;  // small, so many steps stay finite; the cost does not depend on it
    ro.alpha = 0.9;
    RMSprop opt(trainable, ro);
    Tensor x = Tensor::rand({batch, 3, size, size}, gen);
    std::vector<int64_t> labels(batch);
    for (int i = 0; i < batch; ++i) labels[i] = i % 6;
    Tensor y = Tensor::from_vector_i64({batch}, labels);
    x = x.to(dev);
    y = y.to(dev);
    if (dev.is_cuda()) {
      auto step = [&] {
        opt.zero_grad();
        Tensor l = cross_entropy(net(x), y);
        l.backward();
        opt.step();
        return l;
      };
      for (int s = 0; s < 3; ++s) step().item();
      auto t0 = std::chrono::steady_clock::now();
      Tensor l;
      for (int s = 0; s < steps; ++s) l = step();
      const double loss = l.item();  // waits for the last step
      const double per_step =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
      std::printf(
          "{\"impl\": \"engine\", \"device\": \"%s\", \"backend\": \"%s\", \"model\": \"%s\", "
          "\"batch\": %d, \"steps\": %d, \"mean_step_s\": %.6f, \"images_per_s\": %.2f, "
          "\"peak_device_mb\": %.1f, \"loss\": %.5f}\n",
          dev.str().c_str(), backend_name(backend_for(dev)), model.c_str(), batch, steps, per_step,
          batch / per_step, allocator_for(DeviceType::CUDA)->peak_bytes() / 1048576.0, loss);
      return 0;
    }

    std::vector<double> times, t_fwd, t_bwd, t_upd;
    auto since = [](auto t) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    double loss = 0;
    uint64_t nodes = 0;
    for (int s = 0; s < steps + 1; ++s) {  // the first step warms up (allocations, BLAS)
      auto t0 = std::chrono::steady_clock::now();
      opt.zero_grad();
      Tensor l = cross_entropy(net(x), y);
      const double f = since(t0);
      l.backward();
      const double b = since(t0);
      opt.step();
      loss = l.item();
      nodes = autograd::stats().nodes_run;
      autograd::stats().nodes_run = 0;
      double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > 0) {
        times.push_back(dt);
        t_fwd.push_back(f);
        t_bwd.push_back(b - f);
        t_upd.push_back(dt - b);
      }
    }
    auto med = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double median = med(times);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "{\"impl\": \"engine\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %d, "
        "\"median_step_s\": %.5f, \"images_per_s\": %.4f, \"peak_rss_mb\": %.1f, "
        "\"baseline_rss_mb\": %.1f, \"peak_above_baseline_mb\": %.1f, \"loss\": %.5f, "
        "\"frozen_convs\": %s, \"backward_nodes\": %llu, \"forward_s\": %.4f, \"backward_s\": "
        "%.4f, "
        "\"update_s\": %.4f, \"tensor_peak_mb\": %.1f}\n",
        model.c_str(), batch, threads > 0 ? threads : omp_get_max_threads(), steps, median,
        batch / median, ru.ru_maxrss / 1024.0, baseline_rss_mb,
        ru.ru_maxrss / 1024.0 - baseline_rss_mb, loss, freeze ? "true" : "false",
        static_cast<unsigned long long>(nodes), med(t_fwd), med(t_bwd), med(t_upd),
        allocator_for(DeviceType::CPU)->peak_bytes() / 1048576.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
