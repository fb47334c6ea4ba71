// CUDA kernels, native against cuDNN/cuBLAS, one Google Benchmark case per (op, shape, pass,
// backend): every conv layer shape of the four custom CNNs (64x64 input) and of ResNet-50 and
// MobileNetV2 (224x224) and their linear layers, each at batch 8 and 64 (the label's _b8, _b64;
// native conv rows carry the planner's choice as their label), and the memory-bound ops on
// tensors larger than the H200's 60 MB L2, beside a device-to-device copy of the same size (the
// bandwidth ceiling the memory-bound kernels are held to). Kernels are called through the op
// table directly, on preallocated tensors, so op-level checks and allocation stay out of the
// time. Each case runs a warm-up call (cuDNN's algorithm search happens there) and then
// --iters timed calls, each between two CUDA events on the engine's stream; the counters are the
// median time and the rate derived from it (GFLOP/s for conv and linear, GB/s of the minimal
// bytes each kernel must move for the rest). tools/gpu_check.sh pairs native with cudnn and
// prints the ratios. A case whose timed slot holds the very same function in the cudnn table as
// in the native one (the cudnn backend runs the native kernel there) has no cudnn row: it would
// only time the native kernel again under another name.
//
//   bench_cuda_ops [--iters 10] [--json-lines FILE] [--benchmark_filter=conv/custom]
//                  [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/op_table.h"
#include "engine/random.h"
#include "kernels/cuda/conv2d_plan.h"
#include "kernels/cuda/cuda_util.h"

using namespace engine;

namespace {

int g_iters = 10;

// Uniform in [-1, 1) from splitmix64: Tensor::randn's Box-Muller costs ~150 ns an element on the
// CPU, which for the 51M-element activations here would take longer than the kernels. The values
// only need to be random, not normal. The tensors of the last case are kept, since the six cases
// of a layer (three passes, two backends) use the same shapes one after another.
Tensor random_cuda(const Shape& s, uint64_t seed) {
  static std::vector<std::pair<std::pair<Shape, uint64_t>, Tensor>> recent;
  for (auto& [key, t] : recent)
    if (key.first == s && key.second == seed) return t;
  if (recent.size() >= 8) recent.erase(recent.begin());
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull;
  for (float& e : v) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    e = static_cast<float>(z >> 40) * (2.f / 16777216.f) - 1.f;
  }
  recent.emplace_back(std::make_pair(s, seed), Tensor::from_vector(s, v, Device::cuda()));
  return recent.back().second;
}

// Times fn (already warmed up once) g_iters times between events; sets the manual iteration time
// and the median_ms counter; returns the median in seconds.
double time_kernel(benchmark::State& state, const std::function<void()>& fn) {
  cudaStream_t s = cuda::stream();
  cudaEvent_t a, b;
  ENGINE_CUDA_CHECK(cudaEventCreate(&a));
  ENGINE_CUDA_CHECK(cudaEventCreate(&b));
  fn();  // warm-up: cuDNN's algorithm search, lazy module loading, the allocator's first blocks
  ENGINE_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<double> times;
  for (auto _ : state) {
    ENGINE_CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    ENGINE_CUDA_CHECK(cudaEventRecord(b, s));
    ENGINE_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    ENGINE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    times.push_back(ms * 1e-3);
    state.SetIterationTime(ms * 1e-3);
  }
  ENGINE_CUDA_CHECK(cudaEventDestroy(a));
  ENGINE_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(times.begin(), times.end());
  const double med = times.empty() ? 0 : times[times.size() / 2];
  state.counters["median_ms"] = med * 1e3;
  return med;
}

Backend backend_of(const std::string& name) {
  return name == "native" ? Backend::Native : Backend::Cudnn;
}

// ---- convolutions ----

struct ConvShape {
  std::string net;  // custom | resnet50 | mobilenetv2
  int64_t n, cin, cout, hw, k, stride, pad, groups;
};

// Every layer at batch 8 (where a GEMM's output tiles alone fill under half an H200) and 64.
constexpr int64_t kBatches[] = {8, 64};

std::vector<ConvShape> conv_shapes() {
  std::vector<ConvShape> v;
  // The four custom CNNs share their convolutions: 3x3 pad 1, three blocks of three.
  for (auto [ci, co, hw] : std::vector<std::tuple<int, int, int>>{{3, 32, 64},
                                                                  {32, 64, 64},
                                                                  {64, 64, 64},
                                                                  {64, 128, 32},
                                                                  {128, 256, 32},
                                                                  {256, 256, 32},
                                                                  {256, 512, 16},
                                                                  {512, 1024, 16},
                                                                  {1024, 1024, 16}})
    v.push_back({"custom", 64, ci, co, hw, 3, 1, 1, 1});
  // ResNet-50 (torchvision: stride on the 3x3), one row per distinct shape.
  const std::vector<ConvShape> resnet = {
      {"resnet50", 64, 3, 64, 224, 7, 2, 3, 1},    {"resnet50", 64, 64, 64, 56, 1, 1, 0, 1},
      {"resnet50", 64, 64, 64, 56, 3, 1, 1, 1},    {"resnet50", 64, 64, 256, 56, 1, 1, 0, 1},
      {"resnet50", 64, 256, 64, 56, 1, 1, 0, 1},   {"resnet50", 64, 256, 128, 56, 1, 1, 0, 1},
      {"resnet50", 64, 128, 128, 56, 3, 2, 1, 1},  {"resnet50", 64, 256, 512, 56, 1, 2, 0, 1},
      {"resnet50", 64, 128, 512, 28, 1, 1, 0, 1},  {"resnet50", 64, 512, 128, 28, 1, 1, 0, 1},
      {"resnet50", 64, 128, 128, 28, 3, 1, 1, 1},  {"resnet50", 64, 512, 256, 28, 1, 1, 0, 1},
      {"resnet50", 64, 256, 256, 28, 3, 2, 1, 1},  {"resnet50", 64, 512, 1024, 28, 1, 2, 0, 1},
      {"resnet50", 64, 256, 1024, 14, 1, 1, 0, 1}, {"resnet50", 64, 1024, 256, 14, 1, 1, 0, 1},
      {"resnet50", 64, 256, 256, 14, 3, 1, 1, 1},  {"resnet50", 64, 1024, 512, 14, 1, 1, 0, 1},
      {"resnet50", 64, 512, 512, 14, 3, 2, 1, 1},  {"resnet50", 64, 1024, 2048, 14, 1, 2, 0, 1},
      {"resnet50", 64, 512, 2048, 7, 1, 1, 0, 1},  {"resnet50", 64, 2048, 512, 7, 1, 1, 0, 1},
      {"resnet50", 64, 512, 512, 7, 3, 1, 1, 1}};
  v.insert(v.end(), resnet.begin(), resnet.end());
  // MobileNetV2: the stem, every depthwise shape, and the pointwise shapes.
  const int64_t dw[][3] = {{32, 112, 1}, {96, 112, 2}, {144, 56, 1}, {144, 56, 2}, {192, 28, 1},
                           {192, 28, 2}, {384, 14, 1}, {576, 14, 1}, {576, 14, 2}, {960, 7, 1}};
  v.push_back({"mobilenetv2", 64, 3, 32, 224, 3, 2, 1, 1});
  for (auto& d : dw) v.push_back({"mobilenetv2", 64, d[0], d[0], d[1], 3, d[2], 1, d[0]});
  const int64_t pw[][3] = {{32, 16, 112}, {16, 96, 112}, {96, 24, 56},  {24, 144, 56},
                           {144, 24, 56}, {144, 32, 28}, {32, 192, 28}, {192, 32, 28},
                           {192, 64, 14}, {64, 384, 14}, {384, 64, 14}, {384, 96, 14},
                           {96, 576, 14}, {576, 96, 14}, {576, 160, 7}, {160, 960, 7},
                           {960, 160, 7}, {960, 320, 7}, {320, 1280, 7}};
  for (auto& p : pw) v.push_back({"mobilenetv2", 64, p[0], p[1], p[2], 1, 1, 0, 1});
  std::vector<ConvShape> batched;
  for (int64_t n : kBatches)
    for (ConvShape c : v) {
      c.n = n;
      batched.push_back(c);
    }
  return batched;
}

std::string conv_label(const ConvShape& c) {
  char buf[112];
  std::snprintf(buf, sizeof buf, "%s/%lldx%lld@%lld_b%lld/k%lld_s%lld%s", c.net.c_str(),
                static_cast<long long>(c.cin), static_cast<long long>(c.cout),
                static_cast<long long>(c.hw), static_cast<long long>(c.n),
                static_cast<long long>(c.k), static_cast<long long>(c.stride),
                c.groups > 1 ? "_dw" : "");
  return buf;
}

void bench_conv(benchmark::State& state, ConvShape c, std::string pass, std::string backend) {
  const KernelTable& t = kernel_table(backend_of(backend));
  Conv2dParams p;
  p.stride_h = p.stride_w = c.stride;
  p.pad_h = p.pad_w = c.pad;
  p.groups = c.groups;
  const int64_t oh = (c.hw + 2 * c.pad - c.k) / c.stride + 1;
  Tensor x = random_cuda({c.n, c.cin, c.hw, c.hw}, 1);
  Tensor w = random_cuda({c.cout, c.cin / c.groups, c.k, c.k}, 2);
  Tensor b = random_cuda({c.cout}, 3);
  Tensor y = Tensor::empty({c.n, c.cout, oh, oh}, DType::F32, Device::cuda());
  Tensor gy = random_cuda(y.shape(), 4);
  Tensor gx = Tensor::empty(x.shape(), DType::F32, Device::cuda());
  Tensor gw = Tensor::empty(w.shape(), DType::F32, Device::cuda());
  Tensor gb = Tensor::empty(b.shape(), DType::F32, Device::cuda());
  std::function<void()> fn;
  if (pass == "fwd") fn = [&] { t.conv2d_forward(x, w, b, y, p); };
  if (pass == "bwd_data") fn = [&] { t.conv2d_backward_data(gy, w, gx, p); };
  if (pass == "bwd_weight") fn = [&] { t.conv2d_backward_weight(gy, x, gw, gb, p); };
  if (backend == "native") {
    const cuda::ConvPass which = pass == "fwd"        ? cuda::ConvPass::Forward
                                 : pass == "bwd_data" ? cuda::ConvPass::BackwardData
                                                      : cuda::ConvPass::BackwardWeight;
    state.SetLabel(cuda::conv_plan_str(cuda::conv2d_plan(which, x.shape(), w.shape(), p)));
  }
  const double s = time_kernel(state, fn);
  const double flops = 2.0 * c.n * oh * oh * c.cout * (c.cin / c.groups) * c.k * c.k;
  state.counters["gflops"] = s > 0 ? flops / s * 1e-9 : 0;
}

// ---- linear layers ----

struct LinearShape {
  std::string net;
  int64_t n, in, out;
};

void bench_linear(benchmark::State& state, LinearShape l, std::string pass, std::string backend) {
  const KernelTable& t = kernel_table(backend_of(backend));
  Tensor x = random_cuda({l.n, l.in}, 1), w = random_cuda({l.out, l.in}, 2),
         b = random_cuda({l.out}, 3);
  Tensor y = Tensor::empty({l.n, l.out}, DType::F32, Device::cuda());
  Tensor gy = random_cuda(y.shape(), 4);
  Tensor gx = Tensor::empty(x.shape(), DType::F32, Device::cuda());
  Tensor gw = Tensor::empty(w.shape(), DType::F32, Device::cuda());
  Tensor gb = Tensor::empty(b.shape(), DType::F32, Device::cuda());
  std::function<void()> fn;
  if (pass == "fwd") fn = [&] { t.linear_forward(x, w, b, y); };
  if (pass == "bwd_data") fn = [&] { t.linear_backward_data(gy, w, gx); };
  if (pass == "bwd_weight") fn = [&] { t.linear_backward_weight(gy, x, gw, gb); };
  const double s = time_kernel(state, fn);
  state.counters["gflops"] = s > 0 ? 2.0 * l.n * l.in * l.out / s * 1e-9 : 0;
}

// ---- memory-bound ops, on [64, 64, 112, 112] (205 MB, 3.4x the L2) ----

const Shape kBig = {64, 64, 112, 112};

void set_bandwidth(benchmark::State& state, double seconds, double bytes) {
  state.counters["gbps"] = seconds > 0 ? bytes / seconds * 1e-9 : 0;
}

void bench_copy(benchmark::State& state) {
  Tensor x = random_cuda(kBig, 1);
  Tensor y = Tensor::empty(kBig, DType::F32, Device::cuda());
  const double s = time_kernel(state, [&] {
    ENGINE_CUDA_CHECK(cudaMemcpyAsync(y.raw_data(), x.raw_data(), x.nbytes(),
                                      cudaMemcpyDeviceToDevice, cuda::stream()));
  });
  set_bandwidth(state, s, 2.0 * x.nbytes());
}

// The element-wise, optimizer and concat cases: the timed call, holding its own tensors of kBig's
// size (in-place targets are copies, so the cached random tensors stay as drawn), and the bytes it
// must move, as the kernel files' headers count them. Empty for any other op.
std::function<void()> stream_case(const std::string& op, const KernelTable& t, double& bytes) {
  const double f = 4.0 * static_cast<double>(shape_numel(kBig));  // bytes of one full tensor
  const Tensor x = random_cuda(kBig, 1), g = random_cuda(kBig, 2);
  Tensor y = x.clone(), state = random_cuda(kBig, 3).clone(),
         ones = Tensor::full(kBig, 1.f, Device::cuda());
  const Shape half = {kBig[0], kBig[1] / 2, kBig[2], kBig[3]};
  std::vector<Tensor> halves = {random_cuda(half, 4), random_cuda(half, 5)};
  if (op == "fill") {
    bytes = f;  // write y
    return [=]() mutable { t.fill(y, 0.5f); };
  } else if (op == "scale_inplace") {
    bytes = 2 * f;  // read and write y
    return [=]() mutable { t.scale_inplace(y, 1.0001f); };
  } else if (op == "add_inplace") {
    bytes = 3 * f;  // read y and x, write y
    return [=]() mutable { t.add_inplace(y, g, 0.5f); };
  } else if (op == "sum_squares") {
    bytes = f;  // read x (the result's copy to the host is in the time)
    return [=] { benchmark::DoNotOptimize(t.sum_squares(x)); };
  } else if (op == "sgd_momentum") {
    bytes = 5 * f;  // read p, g, buf, write p, buf
    const SgdHyper h{0.01, 0.9, 0.0, 1e-4, false, false};
    return [=]() mutable { t.sgd_update(y, g, state, h); };
  } else if (op == "rmsprop") {
    bytes = 5 * f;  // read p, g, square_avg, write p, square_avg
    const RmspropHyper h{0.01, 0.99, 1e-8, 0.0, 0.0, false};
    return [=]() mutable {
      Tensor none;
      t.rmsprop_update(y, g, ones, none, none, h);
    };
  } else if (op == "adam") {
    bytes = 7 * f;  // read p, g, m, v, write p, m, v
    const AdamHyper h{1e-3, 0.9, 0.999, 1e-8, 0.0, false, 10};
    return [=]() mutable { t.adam_update(y, g, state, ones, h); };
  } else if (op == "concat_fwd") {
    bytes = 2 * f;  // read both halves, write y
    return [=]() mutable { t.concat_forward(halves, 1, y); };
  } else if (op == "concat_bwd") {
    bytes = 2 * f;  // read gy, write both halves
    return [=]() mutable { t.concat_backward(g, 1, halves); };
  }
  return {};
}

void bench_memory_op(benchmark::State& state, std::string op, std::string backend) {
  const KernelTable& t = kernel_table(backend_of(backend));
  double stream_bytes = 0;
  if (std::function<void()> fn = stream_case(op, t, stream_bytes)) {
    set_bandwidth(state, time_kernel(state, fn), stream_bytes);
    return;
  }
  const int64_t c = kBig[1];
  Tensor x = random_cuda(kBig, 1), gy = random_cuda(kBig, 2);
  Tensor y = Tensor::empty(kBig, DType::F32, Device::cuda());
  Tensor gx = Tensor::empty(kBig, DType::F32, Device::cuda());
  const double f = 4.0 * x.numel();  // bytes of one full tensor
  Tensor w = random_cuda({c}, 3), b = random_cuda({c}, 4);
  Tensor mean = Tensor::empty({c}, DType::F32, Device::cuda());
  Tensor invstd = Tensor::empty({c}, DType::F32, Device::cuda());
  Tensor rm = random_cuda({c}, 5), rv = Tensor::full({c}, 1.f, Device::cuda());
  Tensor gw = Tensor::empty({c}, DType::F32, Device::cuda());
  Tensor gb = Tensor::empty({c}, DType::F32, Device::cuda());
  Pool2dParams pp;  // 2x2 stride 2
  const Shape pooled = {kBig[0], kBig[1], kBig[2] / 2, kBig[3] / 2};
  Tensor py = Tensor::empty(pooled, DType::F32, Device::cuda());
  Tensor pidx = Tensor::empty(pooled, DType::I64, Device::cuda());
  Tensor pgy = random_cuda(pooled, 6);
  Tensor gap = Tensor::empty({kBig[0], kBig[1], 1, 1}, DType::F32, Device::cuda());
  Tensor ggap = random_cuda(gap.shape(), 7);
  std::function<void()> fn;
  double bytes = 0;
  // A backend without the kernel (a build without it) reports the case as an error, not a crash.
#define NEED(slot)                                                          \
  if (!t.slot) {                                                            \
    state.SkipWithError(("backend " + backend + " has no " #slot).c_str()); \
    return;                                                                 \
  }
  if (op == "batch_norm_train_fwd") {
    // Statistics pass reads x; normalise pass reads x, writes y.
    NEED(batch_norm_forward_train);
    fn = [&] { t.batch_norm_forward_train(x, w, b, y, mean, invstd, rm, rv, 0.1f, 1e-5f); };
    bytes = 3 * f;
  } else if (op == "batch_norm_eval_fwd") {
    NEED(batch_norm_forward_eval);
    fn = [&] { t.batch_norm_forward_eval(x, w, b, rm, rv, y, 1e-5f); };
    bytes = 2 * f;
  } else if (op == "batch_norm_bwd") {
    NEED(batch_norm_forward_train);
    NEED(batch_norm_backward);
    t.batch_norm_forward_train(x, w, b, y, mean, invstd, rm, rv, 0.1f, 1e-5f);
    // Reduction pass reads gy and x; gradient pass reads gy and x, writes gx.
    fn = [&] { t.batch_norm_backward(gy, x, w, mean, invstd, true, gx, gw, gb); };
    bytes = 5 * f;
  } else if (op == "max_pool_fwd") {
    NEED(max_pool2d_forward);
    fn = [&] { t.max_pool2d_forward(x, py, pidx, pp); };
    bytes = f + f / 4 + f / 2;  // read x, write y (f32) and indices (i64)
  } else if (op == "max_pool_bwd") {
    NEED(max_pool2d_forward);
    NEED(max_pool2d_backward);
    t.max_pool2d_forward(x, py, pidx, pp);
    fn = [&] { t.max_pool2d_backward(pgy, pidx, gx, pp); };
    bytes = f / 4 + f / 2 + f;
  } else if (op == "avg_pool_fwd") {
    NEED(avg_pool2d_forward);
    fn = [&] { t.avg_pool2d_forward(x, py, pp); };
    bytes = f + f / 4;
  } else if (op == "avg_pool_bwd") {
    NEED(avg_pool2d_backward);
    fn = [&] { t.avg_pool2d_backward(pgy, gx, pp); };
    bytes = f / 4 + f;
  } else if (op == "global_avg_pool_fwd") {
    NEED(adaptive_avg_pool2d_forward);
    fn = [&] { t.adaptive_avg_pool2d_forward(x, gap); };
    bytes = f;
  } else if (op == "global_avg_pool_bwd") {
    NEED(adaptive_avg_pool2d_backward);
    fn = [&] { t.adaptive_avg_pool2d_backward(ggap, gx); };
    bytes = f;
  } else if (op == "dropout_fwd") {
    NEED(dropout);
    fn = [&] { t.dropout(x, y, 0.5f, 42, 0); };
    bytes = 2 * f;
  } else if (op == "dropout_bwd") {
    NEED(dropout);
    fn = [&] { t.dropout(gy, gx, 0.5f, 42, 0); };
    bytes = 2 * f;
  } else if (op == "add") {
    NEED(add);
    fn = [&] { t.add(x, gy, y); };
    bytes = 3 * f;
  } else {
    Activation a = op.find("relu6") != std::string::npos     ? Activation::ReLU6
                   : op.find("relu") != std::string::npos    ? Activation::ReLU
                   : op.find("sigmoid") != std::string::npos ? Activation::Sigmoid
                                                             : Activation::Tanh;
    if (op.ends_with("_fwd")) {
      NEED(activation_forward);
      fn = [&, a] { t.activation_forward(a, x, y); };
      bytes = 2 * f;
    } else {
      NEED(activation_forward);
      NEED(activation_backward);
      t.activation_forward(a, x, y);
      fn = [&, a] { t.activation_backward(a, y, gy, gx); };
      bytes = 3 * f;
    }
  }
  set_bandwidth(state, time_kernel(state, fn), bytes);
#undef NEED
}

// Whether the slot a case times holds the same function under both backends, read from the
// filled tables at run time (what the cudnn backend takes over from native can change).
using SameKernel = bool (*)(const KernelTable& native, const KernelTable& cudnn);
#define SAME_KERNEL(slot) \
  [](const KernelTable& n, const KernelTable& c) { return n.slot == c.slot; }

struct TimedCase {
  const char* name;
  SameKernel same;
};

const TimedCase kConvPasses[] = {{"fwd", SAME_KERNEL(conv2d_forward)},
                                 {"bwd_data", SAME_KERNEL(conv2d_backward_data)},
                                 {"bwd_weight", SAME_KERNEL(conv2d_backward_weight)}};
const TimedCase kLinearPasses[] = {{"fwd", SAME_KERNEL(linear_forward)},
                                   {"bwd_data", SAME_KERNEL(linear_backward_data)},
                                   {"bwd_weight", SAME_KERNEL(linear_backward_weight)}};
// The memory-bound cases of bench_memory_op, each with the slot it times (its set-up calls, such
// as the forward before a backward, are not timed).
const TimedCase kMemoryOps[] = {{"batch_norm_train_fwd", SAME_KERNEL(batch_norm_forward_train)},
                                {"batch_norm_eval_fwd", SAME_KERNEL(batch_norm_forward_eval)},
                                {"batch_norm_bwd", SAME_KERNEL(batch_norm_backward)},
                                {"max_pool_fwd", SAME_KERNEL(max_pool2d_forward)},
                                {"max_pool_bwd", SAME_KERNEL(max_pool2d_backward)},
                                {"avg_pool_fwd", SAME_KERNEL(avg_pool2d_forward)},
                                {"avg_pool_bwd", SAME_KERNEL(avg_pool2d_backward)},
                                {"global_avg_pool_fwd", SAME_KERNEL(adaptive_avg_pool2d_forward)},
                                {"global_avg_pool_bwd", SAME_KERNEL(adaptive_avg_pool2d_backward)},
                                {"relu_fwd", SAME_KERNEL(activation_forward)},
                                {"relu_bwd", SAME_KERNEL(activation_backward)},
                                {"relu6_fwd", SAME_KERNEL(activation_forward)},
                                {"sigmoid_fwd", SAME_KERNEL(activation_forward)},
                                {"sigmoid_bwd", SAME_KERNEL(activation_backward)},
                                {"tanh_fwd", SAME_KERNEL(activation_forward)},
                                {"tanh_bwd", SAME_KERNEL(activation_backward)},
                                {"dropout_fwd", SAME_KERNEL(dropout)},
                                {"dropout_bwd", SAME_KERNEL(dropout)},
                                {"add", SAME_KERNEL(add)},
                                {"fill", SAME_KERNEL(fill)},
                                {"scale_inplace", SAME_KERNEL(scale_inplace)},
                                {"add_inplace", SAME_KERNEL(add_inplace)},
                                {"sum_squares", SAME_KERNEL(sum_squares)},
                                {"sgd_momentum", SAME_KERNEL(sgd_update)},
                                {"rmsprop", SAME_KERNEL(rmsprop_update)},
                                {"adam", SAME_KERNEL(adam_update)},
                                {"concat_fwd", SAME_KERNEL(concat_forward)},
                                {"concat_bwd", SAME_KERNEL(concat_backward)}};
#undef SAME_KERNEL

// Whether backend `be` gets a row for case c: native always; cudnn only where it runs a kernel
// of its own. The cases left out are listed on stderr, so a reader knows why a row is missing.
bool own_row(const std::string& be, const std::string& label, const TimedCase& c) {
  if (be != "cudnn" || !c.same(kernel_table(Backend::Native), kernel_table(Backend::Cudnn)))
    return true;
  std::fprintf(stderr,
               "bench_cuda_ops: no cudnn row for %s: the cudnn backend runs the native "
               "kernel\n",
               label.c_str());
  return false;
}

bool has_slot_for(Backend b, const std::string& op) {
  const KernelTable& t = kernel_table(b);
  if (op == "conv") return t.conv2d_forward && t.conv2d_backward_data && t.conv2d_backward_weight;
  if (op == "linear") return t.linear_forward && t.linear_backward_data && t.linear_backward_weight;
  return t.conv2d_forward != nullptr;  // an empty table: a build without that backend
}

void register_all() {
  const std::vector<std::string> backends = {"native", "cudnn"};
  for (const ConvShape& c : conv_shapes())
    for (const TimedCase& pass : kConvPasses)
      for (const std::string& be : backends) {
        const std::string label = "conv/" + conv_label(c) + "/" + pass.name;
        if (!has_slot_for(backend_of(be), "conv") || !own_row(be, label, pass)) continue;
        benchmark::RegisterBenchmark((label + "/" + be).c_str(), bench_conv, c,
                                     std::string(pass.name), be)
            ->UseManualTime()
            ->Iterations(g_iters)
            ->Unit(benchmark::kMillisecond);
      }
  std::vector<LinearShape> linears;
  for (int64_t n : kBatches)
    for (const LinearShape& l : {LinearShape{"custom_fc1", n, 65536, 256},
                                 LinearShape{"custom_fc2", n, 256, 256},
                                 LinearShape{"custom_fc3", n, 256, 6},
                                 LinearShape{"resnet50_fc", n, 2048, 1000},
                                 LinearShape{"mobilenetv2_fc", n, 1280, 1000},
                                 LinearShape{"ensemble_head", n, 12, 6}})
      linears.push_back(l);
  for (const LinearShape& l : linears)
    for (const TimedCase& pass : kLinearPasses)
      for (const std::string& be : backends) {
        const std::string label =
            "linear/" + l.net + "_b" + std::to_string(l.n) + "/" + pass.name;
        if (!has_slot_for(backend_of(be), "linear") || !own_row(be, label, pass)) continue;
        benchmark::RegisterBenchmark((label + "/" + be).c_str(), bench_linear, l,
                                     std::string(pass.name), be)
            ->UseManualTime()
            ->Iterations(g_iters)
            ->Unit(benchmark::kMillisecond);
      }
  benchmark::RegisterBenchmark("memory/copy/device", bench_copy)
      ->UseManualTime()
      ->Iterations(g_iters)
      ->Unit(benchmark::kMillisecond);
  for (const TimedCase& op : kMemoryOps)
    for (const std::string& be : backends) {
      const std::string label = std::string("memory/") + op.name;
      if (!has_slot_for(backend_of(be), "memory") || !own_row(be, label, op)) continue;
      benchmark::RegisterBenchmark((label + "/" + be).c_str(), bench_memory_op,
                                   std::string(op.name), be)
          ->UseManualTime()
          ->Iterations(g_iters)
          ->Unit(benchmark::kMillisecond);
    }
}

}  // namespace

// --json-lines FILE: beside the console table, one JSON line per case appended to FILE as soon
// as the case ends (name, median_ms, gflops or gbps, or its error), so a run cut short by a time
// limit keeps every case it finished (Google Benchmark's own JSON is written only at the end).
class JsonLinesReporter : public benchmark::ConsoleReporter {
 public:
  explicit JsonLinesReporter(std::FILE* f) : f_(f) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      std::string name = r.benchmark_name();
      name = name.substr(0, name.find("/iterations:"));
      std::string line = "{\"name\": \"" + name + "\"";
      if (r.error_occurred) {
        std::string msg;
        for (char c : r.error_message) msg += (c == '"' || c == '\\') ? ' ' : c;
        line += ", \"error\": \"" + msg + "\"";
      }
      for (const auto& [k, c] : r.counters) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(c.value));
        line += ", \"" + k + "\": " + buf;
      }
      std::fprintf(f_, "%s}\n", line.c_str());
    }
    std::fflush(f_);
  }

 private:
  std::FILE* f_;
};

int main(int argc, char** argv) {
  std::vector<char*> args;
  const char* json_lines = nullptr;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
      g_iters = std::max(1, std::atoi(argv[++i]));
      continue;
    }
    if (std::strcmp(argv[i], "--json-lines") == 0 && i + 1 < argc) {
      json_lines = argv[++i];
      continue;
    }
    args.push_back(argv[i]);
  }
  bool listing = false;  // --benchmark_list_tests works without a GPU
  for (char* a : args) listing |= std::strncmp(a, "--benchmark_list_tests", 22) == 0;
  std::string why;
  kernel_table(Backend::Native);  // registers the CUDA runtime when a device answers
  if (!cuda::cuda_available(&why) && !listing) {
    std::fprintf(stderr, "bench_cuda_ops: no usable CUDA device: %s\n", why.c_str());
    return 2;
  }
  register_all();
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (json_lines) {
    std::FILE* f = std::fopen(json_lines, "a");
    if (!f) {
      std::fprintf(stderr, "bench_cuda_ops: --json-lines %s: cannot open for appending\n",
                   json_lines);
      return 2;
    }
    JsonLinesReporter reporter(f);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    std::fclose(f);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
  return 0;
}
