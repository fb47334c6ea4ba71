// CPU conv2d algorithms side by side on the study's nine 3x3 layer shapes: im2col + GEMM against
// Winograd F(2x2,3x3) and F(4x4,3x3), and the automatic choice, forward, backward-data and
// backward-weight, median of several runs, in GFLOP/s of direct-convolution FLOPs (so a faster
// algorithm shows more than the machine's peak). Prints a markdown table.
// --width scales the channels as the models do (max(1, round(c * width))); --image-size is the
// input side (the layers run at it, at half and at a quarter of it, as in the models).
// bench/torch_conv_layers.py times the same layers in PyTorch.
//
//   OMP_NUM_THREADS=2 bench_conv_cpu [--batch 8] [--reps 5] [--width 1] [--image-size 64]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <tuple>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/op_table.h"
#include "engine/random.h"
#include "kernels/cpu/conv2d_winograd.h"

using namespace engine;

int main(int argc, char** argv) {
  int batch = 8, reps = 5, size = 64;
  double width = 1;
  std::string only, layer_list;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h" || i + 1 >= argc) {
      std::printf("usage: bench_conv_cpu [--batch 8] [--reps 5] [--width 1] [--image-size 64]\n"
                  "                      [--algos im2col,winograd2,winograd4,auto] [--layers 1,2,..9]\n");
      return k == "--help" || k == "-h" ? 0 : 2;
    }
    if (k == "--batch") batch = std::stoi(argv[i + 1]);
    else if (k == "--reps") reps = std::stoi(argv[i + 1]);
    else if (k == "--width") width = std::stod(argv[i + 1]);
    else if (k == "--image-size") size = std::stoi(argv[i + 1]);
    else if (k == "--algos") only = argv[i + 1];
    else if (k == "--layers") layer_list = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_conv_cpu: unknown flag %s (try --help)\n", k.c_str());
      return 2;
    }
  }
  auto ch = [&](int c) { return std::max(1, static_cast<int>(std::lround(c * width))); };
  struct Layer { int cin, cout, hw; };
  const Layer layers[] = {{3, ch(32), size},               {ch(32), ch(64), size},
                          {ch(64), ch(64), size},          {ch(64), ch(128), size / 2},
                          {ch(128), ch(256), size / 2},    {ch(256), ch(256), size / 2},
                          {ch(256), ch(512), size / 4},    {ch(512), ch(1024), size / 4},
                          {ch(1024), ch(1024), size / 4}};
  Generator gen(1);
  KernelTable& k = kernel_table(Backend::Cpu);
  std::printf("threads %d, batch %d, median of %d\n\n", omp_get_max_threads(), batch, reps);
  std::printf("| layer | algo | fwd ms | bwd-data ms | bwd-weight ms | fwd GF/s | step GF/s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (int li = 0; li < 9; ++li) {
    const Layer& l = layers[li];
    if (!layer_list.empty() &&
        ("," + layer_list + ",").find("," + std::to_string(li + 1) + ",") == std::string::npos)
      continue;
    Tensor x = Tensor::rand({batch, l.cin, l.hw, l.hw}, gen);
    Tensor w = Tensor::rand({l.cout, l.cin, 3, 3}, gen, -0.1f, 0.1f);
    Tensor b = Tensor::rand({l.cout}, gen);
    Tensor y = Tensor::empty({batch, l.cout, l.hw, l.hw});
    Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape()), gb = Tensor::empty({l.cout});
    Conv2dParams p;
    p.pad_h = p.pad_w = 1;
    const double flops = 2.0 * batch * l.cout * l.cin * 9.0 * l.hw * l.hw;
    for (auto [algo, name, key] :
         {std::tuple{cpu::ConvAlgorithm::Im2col, "im2col", "im2col"},
          std::tuple{cpu::ConvAlgorithm::Winograd2, "winograd F(2x2,3x3)", "winograd2"},
          std::tuple{cpu::ConvAlgorithm::Winograd4, "winograd F(4x4,3x3)", "winograd4"},
          std::tuple{cpu::ConvAlgorithm::Auto, "auto", "auto"}}) {
      if (!only.empty() && ("," + only + ",").find(std::string(",") + key + ",") == std::string::npos)
        continue;
      cpu::set_conv_algorithm(algo);
      auto time = [&](auto fn) {
        std::vector<double> t;
        fn();  // warm-up: scratch buffers, BLAS threads
        for (int r = 0; r < reps; ++r) {
          auto t0 = std::chrono::steady_clock::now();
          fn();
          t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
      };
      const double f = time([&] { k.conv2d_forward(x, w, b, y, p); });
      const double d = time([&] { k.conv2d_backward_data(y, w, gx, p); });
      const double g = time([&] { k.conv2d_backward_weight(y, x, gw, gb, p); });
      std::printf("| %d->%d @%dx%d | %s | %.1f | %.1f | %.1f | %.0f | %.0f |\n", l.cin, l.cout, l.hw,
                  l.hw, name, f * 1e3, d * 1e3, g * 1e3, flops / f / 1e9, 3 * flops / (f + d + g) / 1e9);
    }
  }
  return 0;
}
