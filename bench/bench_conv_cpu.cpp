// CPU conv2d algorithms side by side: im2col + GEMM against Winograd F(2x2,3x3) and F(4x4,3x3)
// (where eligible: 3x3, stride 1, one group), and the automatic choice (which also covers the
// depthwise kernel), forward, backward-data and backward-weight, median of several runs, in
// GFLOP/s of direct-convolution FLOPs (so a faster algorithm shows more than the machine's peak).
// Prints a markdown table.
// --model study (default): the custom CNNs' nine 3x3 layers; --width scales the channels as the
// models do (max(1, round(c * width))) and --image-size is the input side (the layers run at it,
// at half and at a quarter of it). bench/torch_conv_layers.py times the same layers in PyTorch.
// --model resnet50 | mobilenet_v2: each distinct conv shape of the torchvision model at
// --image-size (224 for their own resolution).
//
//   OMP_NUM_THREADS=2 bench_conv_cpu [--model study] [--batch 8] [--reps 5] [--width 1]
//                                    [--image-size 64] [--algos ...] [--layers 1,2,..]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "engine/op_table.h"
#include "engine/random.h"
#include "kernels/cpu/conv2d_winograd.h"

using namespace engine;

namespace {

struct Layer {
  int cin, cout, hw, k = 3, stride = 1, groups = 1;  // hw: input side
  int out() const { return (hw + 2 * (k / 2) - k) / stride + 1; }
};

// Distinct conv shapes of torchvision's ResNet-50 at input side s (stem, then per stage the
// bottleneck's 1x1 reduce, 3x3, 1x1 expand, the next block's 1x1 reduce and the downsample).
std::vector<Layer> resnet50_layers(int s) {
  std::vector<Layer> l = {{3, 64, s, 7, 2}};
  int in = 64, hw = s / 4;
  for (int stage = 0; stage < 4; ++stage) {
    const int w = 64 << stage, out = 4 * w, stride = stage == 0 ? 1 : 2;
    l.push_back({in, w, hw * stride, 1});            // 1x1 reduce of the first block
    l.push_back({w, w, hw * stride, 3, stride});     // its 3x3 (stride 2 from layer2 on)
    l.push_back({w, w, hw, 3});                      // the later blocks' 3x3
    l.push_back({w, out, hw, 1});                    // 1x1 expand
    l.push_back({out, w, hw, 1});                    // the later blocks' 1x1 reduce
    l.push_back({in, out, hw * stride, 1, stride});  // downsample
    in = out, hw /= 2;
  }
  return l;
}

// Distinct conv shapes of torchvision's MobileNetV2 at input side s: stem, then per inverted
// residual setting the 1x1 expansion, the depthwise 3x3 (stride 2 where the setting starts with
// one) and the 1x1 projection, and the last 1x1 to 1280.
std::vector<Layer> mobilenet_v2_layers(int s) {
  std::vector<Layer> l = {{3, 32, s, 3, 2}};
  const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int in = 32, hw = s / 2;
  for (const auto& st : settings) {
    const int t = st[0], c = st[1], n = st[2], stride = st[3], hidden = in * t;
    if (t != 1) l.push_back({in, hidden, hw, 1});
    l.push_back({hidden, hidden, hw, 3, stride, hidden});
    hw = (hw + stride - 1) / stride;
    l.push_back({hidden, c, hw, 1});
    if (n > 1) {  // the repeats: expansion, depthwise stride 1, projection back to c
      l.push_back({c, c * t, hw, 1});
      l.push_back({c * t, c * t, hw, 3, 1, c * t});
      l.push_back({c * t, c, hw, 1});
    }
    in = c;
  }
  l.push_back({320, 1280, hw, 1});
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  int batch = 8, reps = 5, size = -1;
  double width = 1;
  std::string only, layer_list, model = "study";
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h" || i + 1 >= argc) {
      std::printf(
          "usage: bench_conv_cpu [--model study|resnet50|mobilenet_v2] [--batch 8] [--reps 5]\n"
          "                      [--width 1] [--image-size 64 (224 for resnet50/mobilenet_v2)]\n"
          "                      [--algos im2col,winograd2,winograd4,direct,auto] [--layers "
          "1,2,..]\n");
      return k == "--help" || k == "-h" ? 0 : 2;
    }
    if (k == "--batch")
      batch = std::stoi(argv[i + 1]);
    else if (k == "--reps")
      reps = std::stoi(argv[i + 1]);
    else if (k == "--width")
      width = std::stod(argv[i + 1]);
    else if (k == "--image-size")
      size = std::stoi(argv[i + 1]);
    else if (k == "--algos")
      only = argv[i + 1];
    else if (k == "--layers")
      layer_list = argv[i + 1];
    else if (k == "--model")
      model = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_conv_cpu: unknown flag %s (try --help)\n", k.c_str());
      return 2;
    }
  }
  auto ch = [&](int c) { return std::max(1, static_cast<int>(std::lround(c * width))); };
  std::vector<Layer> layers;
  if (model == "study") {
    if (size < 0) size = 64;
    layers = {{3, ch(32), size},
              {ch(32), ch(64), size},
              {ch(64), ch(64), size},
              {ch(64), ch(128), size / 2},
              {ch(128), ch(256), size / 2},
              {ch(256), ch(256), size / 2},
              {ch(256), ch(512), size / 4},
              {ch(512), ch(1024), size / 4},
              {ch(1024), ch(1024), size / 4}};
  } else if (model == "resnet50") {
    layers = resnet50_layers(size < 0 ? 224 : size);
  } else if (model == "mobilenet_v2") {
    layers = mobilenet_v2_layers(size < 0 ? 224 : size);
  } else {
    std::fprintf(stderr, "bench_conv_cpu: --model %s: expected study, resnet50 or mobilenet_v2\n",
                 model.c_str());
    return 2;
  }
  if (model != "study") {  // each shape once
    std::vector<Layer> unique;
    for (const Layer& l : layers) {
      auto same = [&](const Layer& u) {
        return u.cin == l.cin && u.cout == l.cout && u.hw == l.hw && u.k == l.k &&
               u.stride == l.stride && u.groups == l.groups;
      };
      if (std::none_of(unique.begin(), unique.end(), same)) unique.push_back(l);
    }
    layers = unique;
  }
  Generator gen(1);
  KernelTable& k = kernel_table(Backend::Cpu);
  std::printf("%s, threads %d, batch %d, median of %d\n\n", model.c_str(), omp_get_max_threads(),
              batch, reps);
  std::printf("| layer | algo | fwd ms | bwd-data ms | bwd-weight ms | fwd GF/s | step GF/s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (size_t li = 0; li < layers.size(); ++li) {
    const Layer& l = layers[li];
    if (!layer_list.empty() &&
        ("," + layer_list + ",").find("," + std::to_string(li + 1) + ",") == std::string::npos)
      continue;
    const int cin_g = l.cin / l.groups, oh = l.out();
    Tensor x = Tensor::rand({batch, l.cin, l.hw, l.hw}, gen);
    Tensor w = Tensor::rand({l.cout, cin_g, l.k, l.k}, gen, -0.1f, 0.1f);
    Tensor b = Tensor::rand({l.cout}, gen);
    Tensor y = Tensor::empty({batch, l.cout, oh, oh});
    Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape()),
           gb = Tensor::empty({l.cout});
    Conv2dParams p;
    p.pad_h = p.pad_w = l.k / 2;
    p.stride_h = p.stride_w = l.stride;
    p.groups = l.groups;
    const double flops = 2.0 * batch * l.cout * cin_g * l.k * l.k * oh * oh;
    char label[96];
    std::snprintf(label, sizeof label, "%d->%d @%dx%d k%d s%d%s", l.cin, l.cout, l.hw, l.hw, l.k,
                  l.stride, l.groups > 1 ? " dw" : "");
    const bool wino = cpu::winograd_eligible(w.shape(), p);
    for (auto [algo, name, key] :
         {std::tuple{cpu::ConvAlgorithm::Im2col, "im2col", "im2col"},
          std::tuple{cpu::ConvAlgorithm::Winograd2, "winograd F(2x2,3x3)", "winograd2"},
          std::tuple{cpu::ConvAlgorithm::Winograd4, "winograd F(4x4,3x3)", "winograd4"},
          std::tuple{cpu::ConvAlgorithm::Direct, "direct", "direct"},
          std::tuple{cpu::ConvAlgorithm::Auto, "auto", "auto"}}) {
      if (!only.empty() &&
          ("," + only + ",").find(std::string(",") + key + ",") == std::string::npos)
        continue;
      if (!wino && (algo == cpu::ConvAlgorithm::Winograd2 ||
                    algo == cpu::ConvAlgorithm::Winograd4 || algo == cpu::ConvAlgorithm::Direct))
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
      std::printf("| %s | %s | %.1f | %.1f | %.1f | %.0f | %.0f |\n", label, name, f * 1e3, d * 1e3,
                  g * 1e3, flops / f / 1e9, 3 * flops / (f + d + g) / 1e9);
    }
  }
  return 0;
}
