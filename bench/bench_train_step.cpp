// Times one training step (forward, cross-entropy, backward, RMSprop update) of a custom CNN on
// the CPU and prints one JSON line: median seconds per step, images/s and peak resident memory.
// One model per process, so that the peak RSS is that model's. bench/cpu_train_step.py runs this
// beside the same step in PyTorch and prints the ratio.
//
//   bench_train_step --model simple --batch 8 --steps 5 --threads 2
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/optim.h"
#include "models/custom_cnn.h"

extern "C" void openblas_set_num_threads(int);

int main(int argc, char** argv) {
  std::string model = "simple";
  int batch = 8, steps = 5, threads = 0, size = 64;
  float width = 1.f;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--batch") batch = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--image-size") size = std::stoi(v);
    else if (k == "--width") width = std::stof(v);
    else {
      std::fprintf(stderr, "bench_train_step: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  try {
    if (threads > 0) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
    }
    using namespace engine;
    CustomCnnOptions o;
    o.variant = parse_cnn_variant(model);
    o.image_size = size;
    o.width = width;
    Generator gen(1);
    CustomCnn net(o, gen);
    net.train();
    RmspropOptions ro;
    ro.lr = 1e-4;  // small, so many steps stay finite; the cost does not depend on it
    ro.alpha = 0.9;
    RMSprop opt(net.named_parameters(), ro);
    Tensor x = Tensor::rand({batch, 3, size, size}, gen);
    std::vector<int64_t> labels(batch);
    for (int i = 0; i < batch; ++i) labels[i] = i % 6;
    Tensor y = Tensor::from_vector_i64({batch}, labels);

    std::vector<double> times;
    double loss = 0;
    for (int s = 0; s < steps + 1; ++s) {  // the first step warms up (allocations, BLAS)
      auto t0 = std::chrono::steady_clock::now();
      opt.zero_grad();
      Tensor l = cross_entropy(net(x), y);
      l.backward();
      opt.step();
      loss = l.item();
      double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > 0) times.push_back(dt);
    }
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "{\"impl\": \"engine\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"steps\": %d, "
        "\"median_step_s\": %.5f, \"images_per_s\": %.4f, \"peak_rss_mb\": %.1f, \"loss\": %.5f}\n",
        model.c_str(), batch, threads > 0 ? threads : omp_get_max_threads(), steps, median,
        batch / median, ru.ru_maxrss / 1024.0, loss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
