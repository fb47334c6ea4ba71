// CPU conv2d algorithms side by side on the study's layer shapes (batch 8): im2col + GEMM against
// Winograd F(2x2,3x3) and F(4x4,3x3), forward, backward-data and backward-weight, median of several runs, in
// GFLOP/s of direct-convolution FLOPs (so a faster algorithm shows more than the machine's
// peak). Prints a markdown table.
//
//   OMP_NUM_THREADS=2 bench_conv_cpu [--batch 8] [--reps 5]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/op_table.h"
#include "engine/random.h"
#include "kernels/cpu/conv2d_winograd.h"

using namespace engine;

int main(int argc, char** argv) {
  int batch = 8, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--batch") batch = std::stoi(argv[i + 1]);
    else if (k == "--reps") reps = std::stoi(argv[i + 1]);
  }
  struct Layer { int cin, cout, hw; };
  const Layer layers[] = {{3, 32, 64},    {32, 64, 64},   {64, 64, 64},
                          {64, 128, 32},  {128, 256, 32}, {256, 256, 32},
                          {256, 512, 16}, {512, 1024, 16}, {1024, 1024, 16}};
  Generator gen(1);
  KernelTable& k = kernel_table(Backend::Cpu);
  std::printf("threads %d, batch %d, median of %d\n\n", omp_get_max_threads(), batch, reps);
  std::printf("| layer | algo | fwd ms | bwd-data ms | bwd-weight ms | fwd GF/s | step GF/s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Layer& l : layers) {
    Tensor x = Tensor::rand({batch, l.cin, l.hw, l.hw}, gen);
    Tensor w = Tensor::rand({l.cout, l.cin, 3, 3}, gen, -0.1f, 0.1f);
    Tensor b = Tensor::rand({l.cout}, gen);
    Tensor y = Tensor::empty({batch, l.cout, l.hw, l.hw});
    Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape()), gb = Tensor::empty({l.cout});
    Conv2dParams p;
    p.pad_h = p.pad_w = 1;
    const double flops = 2.0 * batch * l.cout * l.cin * 9.0 * l.hw * l.hw;
    for (auto [algo, name] : {std::pair{cpu::ConvAlgorithm::Im2col, "im2col"},
                              std::pair{cpu::ConvAlgorithm::Winograd2, "winograd F(2x2,3x3)"},
                              std::pair{cpu::ConvAlgorithm::Winograd4, "winograd F(4x4,3x3)"}}) {
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
