// cuDNN conv2d (NCHW float32, any stride, padding, dilation and groups) through the legacy API:
// cudnnConvolutionForward + cudnnAddTensor for the bias, cudnnConvolutionBackwardData, and
// cudnnConvolutionBackwardFilter + cudnnConvolutionBackwardBias. cuDNN picks among implicit GEMM,
// precomputed-index implicit GEMM, explicit GEMM, FFT, tiled FFT and Winograd.
//
// Conv2dParams::activation: after the convolution and the bias add, the cudnn backend's own
// activation_forward slot (kernels/cudnn/activation.cpp: cudnnActivationForward, which cuDNN
// allows in place with identical descriptors, or the native kernel for tensors too large for
// cuDNN's descriptors) runs in place on y. So unlike the native kernels this is a separate pass
// over y (a read and a write, 8 bytes per output), as the bias add already is. Not used:
// cudnnConvolutionBiasActivationForward, which would fuse bias and activation but is documented
// for ReLU (and identity) only, not ReLU6, sigmoid or tanh, and is marked deprecated in cuDNN 9's
// header; whether it pays for ReLU is for a GPU run to time.
//
// Algorithm choice: once per (shapes, parameters, direction, TF32 setting), cudnnFind*AlgorithmEx
// times every algorithm that fits in kMaxWorkspaceBytes on the call's own buffers, and the result
// is kept in a mutex-guarded map (conv_algo_cache_size() counts its entries). We take the fastest
// deterministic algorithm and only fall back to a non-deterministic one when no deterministic one
// ran. PyTorch's default allows the non-deterministic ones (atomics in some backward-data and
// backward-filter algorithms); we prefer bit-identical gradients run to run, which is what the
// CPU engine's exact resume relies on, at the price of a sometimes slower backward pass.
//
// Math: CUDNN_FMA_MATH while TF32 is off (the default). CUDNN_DEFAULT_MATH would permit TF32 tensor
// cores on Ampere and later, so it is used only when set_cudnn_allow_tf32(true); then the chosen
// algorithm runs with the math type Find reports for it (as PyTorch does: running an algorithm
// under another math type than it was found with can fail with CUDNN_STATUS_BAD_PARAM).
//
// Cost for a typical shape (ResNet-50's 3x3 64->64 conv, x [32, 64, 56, 56], stride 1, pad 1):
// 2*N*K*OH*OW*C*R*S = 7.4 GFLOP per pass and ~51 MB moved (x and y 25.7 MB each): compute-bound,
// 110 us at the H200's 67 TFLOP/s FP32 (non-tensor) peak. Fraction of the ceiling reached: not yet
// measured on a GPU.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/cudnn/cudnn_util.h"

namespace engine {
namespace cudnn {
namespace {

using cuda::fptr;

enum class Direction : uint8_t { Forward, BackwardData, BackwardFilter };

// Everything that decides which algorithms are valid and which is fastest.
struct ConvKey {
  int64_t n, c, h, w;  // input [N, C, H, W]
  int64_t k, r, s;     // filter [K, C / groups, R, S]
  int64_t oh, ow;      // output [N, K, OH, OW]
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
  Direction direction;
  bool tf32;
  auto operator<=>(const ConvKey&) const = default;
};

struct ConvAlgo {
  int algo;              // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t, by direction
  cudnnMathType_t math;  // the math type to run it with
  size_t workspace;      // bytes
  float find_ms = 0;     // its time in Find
};

std::mutex g_cache_mu;
std::map<ConvKey, ConvAlgo> g_cache;

std::string key_str(const ConvKey& k) {
  static const char* const names[] = {"forward", "backward data", "backward filter"};
  return detail::concat(
      names[static_cast<int>(k.direction)], ", x ", shape_str({k.n, k.c, k.h, k.w}), ", w ",
      shape_str({k.k, k.c / k.groups, k.r, k.s}), ", y ", shape_str({k.n, k.k, k.oh, k.ow}),
      ", stride (", k.stride_h, ", ", k.stride_w, "), padding (", k.pad_h, ", ", k.pad_w,
      "), dilation (", k.dilation_h, ", ", k.dilation_w, "), groups ", k.groups,
      k.tf32 ? ", tf32" : "");
}

ConvKey conv_key(const Shape& x, const Tensor& w, const Shape& y, const Conv2dParams& p,
                 Direction dir) {
  return {.n = x[0],
          .c = x[1],
          .h = x[2],
          .w = x[3],
          .k = w.size(0),
          .r = w.size(2),
          .s = w.size(3),
          .oh = y[2],
          .ow = y[3],
          .stride_h = p.stride_h,
          .stride_w = p.stride_w,
          .pad_h = p.pad_h,
          .pad_w = p.pad_w,
          .dilation_h = p.dilation_h,
          .dilation_w = p.dilation_w,
          .groups = p.groups,
          .direction = dir,
          .tf32 = cudnn_allow_tf32()};
}

// The descriptors of one call. x, w, y are the input, filter and output shapes of the forward
// convolution; in the backward passes they describe gx, gw and gy.
struct ConvCall {
  ConvCall(const Shape& x, const Tensor& w, const Shape& y, const Conv2dParams& p, Direction dir)
      : key(conv_key(x, w, y, p, dir)),
        xd(tensor_desc(x[0], x[1], x[2], x[3])),
        wd(filter_desc(w)),
        yd(tensor_desc(y[0], y[1], y[2], y[3])) {
    ENGINE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, static_cast<int>(p.pad_h), static_cast<int>(p.pad_w), static_cast<int>(p.stride_h),
        static_cast<int>(p.stride_w), static_cast<int>(p.dilation_h),
        static_cast<int>(p.dilation_w), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    ENGINE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, static_cast<int>(p.groups)));
    set_math(key.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH);  // what Find may use
  }
  void set_math(cudnnMathType_t m) { ENGINE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, m)); }

  ConvKey key;
  TensorDesc xd;
  FilterDesc wd;
  TensorDesc yd;
  ConvDesc conv;
};

// Find's results come fastest first. The fastest deterministic one that ran and obeys the TF32
// setting, else the fastest that ran and obeys it (see the comment at the top).
template <typename Perf>
const Perf& pick(const std::vector<Perf>& results, int count, const ConvKey& key) {
  const Perf* fallback = nullptr;
  for (int i = 0; i < count; ++i) {
    const Perf& r = results[i];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    const bool tensor_op =
        r.mathType == CUDNN_TENSOR_OP_MATH || r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    if (tensor_op && !key.tf32) continue;
    if (r.determinism == CUDNN_DETERMINISTIC) return r;
    if (!fallback) fallback = &r;
  }
  ENGINE_CHECK(fallback != nullptr, "conv2d (cudnn): no cuDNN algorithm ran for ", key_str(key),
               " within a workspace of ", kMaxWorkspaceBytes, " bytes");
  return *fallback;
}

// cuDNN's name for an algorithm of a direction (the enum's order in cudnn_cnn.h).
const char* algo_name(Direction d, int algo) {
  static const char* const fwd[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                                    "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* const bwd_data[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD",
                                         "WINOGRAD_NONFUSED"};
  static const char* const bwd_filter[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD",
                                           "WINOGRAD_NONFUSED", "FFT_TILING"};
  const auto pick_name = [algo](const auto& names) -> const char* {
    return algo >= 0 && algo < static_cast<int>(std::size(names)) ? names[algo] : "?";
  };
  switch (d) {
    case Direction::Forward: return pick_name(fwd);
    case Direction::BackwardData: return pick_name(bwd_data);
    case Direction::BackwardFilter: return pick_name(bwd_filter);
  }
  return "?";
}

// ENGINE_CUDNN_LOG_ALGOS=1: one JSON line on stderr per shape when its algorithm is chosen
// (tools/gpu_check.sh collects them beside the benchmark: which algorithm cuDNN ran for each conv
// shape is what the native kernels are measured against).
void log_choice(const ConvKey& k, const ConvAlgo& a) {
  static const bool on = [] {
    const char* e = std::getenv("ENGINE_CUDNN_LOG_ALGOS");
    return e && *e && std::string(e) != "0";
  }();
  if (!on) return;
  std::fprintf(stderr,
               "{\"cudnn_algo\": \"%s\", \"algo_id\": %d, \"shape\": \"%s\", \"find_ms\": %.4f, "
               "\"workspace_bytes\": %zu, \"math\": \"%s\"}\n",
               algo_name(k.direction, a.algo), a.algo, key_str(k).c_str(), a.find_ms, a.workspace,
               a.math == CUDNN_FMA_MATH ? "fma" : "default");
}

// The algorithm for c.key: looked up, or found by `find` on the first call (under the lock, so
// two threads never time the same shape at once; Find is a one-off cost per shape).
template <typename FindFn>
ConvAlgo algorithm(const ConvCall& c, FindFn find) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  auto it = g_cache.find(c.key);
  if (it != g_cache.end()) return it->second;
  const ConvAlgo a = find();
  g_cache.emplace(c.key, a);
  log_choice(c.key, a);
  return a;
}

// The math type the chosen algorithm runs with: FMA whenever TF32 is off, whatever Find reported.
cudnnMathType_t run_math(const ConvKey& key, cudnnMathType_t found) {
  return key.tf32 ? found : CUDNN_FMA_MATH;
}

// Each find_* times the algorithms on the call's buffers (the output is scribbled on, then
// overwritten by the real call), then asks the workspace size again with the final math type:
// the one Find reports has been known to fall short of what the run needs.
ConvAlgo find_forward(ConvCall& c, const float* x, const float* w, float* y) {
  int max_count = 0;
  ENGINE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle(), &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> results(static_cast<size_t>(max_count));
  int count = 0;
  {
    cuda::Scratch ws(kMaxWorkspaceBytes);
    ENGINE_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        handle(), c.xd, x, c.wd, w, c.conv, c.yd, y, max_count, &count, results.data(),
        ws.as<void>(), kMaxWorkspaceBytes));
  }
  const auto& best = pick(results, count, c.key);
  ConvAlgo a{best.algo, run_math(c.key, best.mathType), best.memory, best.time};
  c.set_math(a.math);
  size_t bytes = 0;
  ENGINE_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle(), c.xd, c.wd, c.conv, c.yd,
                                                             best.algo, &bytes));
  a.workspace = std::max(a.workspace, bytes);
  return a;
}

ConvAlgo find_backward_data(ConvCall& c, const float* gy, const float* w, float* gx) {
  int max_count = 0;
  ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle(), &max_count));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> results(static_cast<size_t>(max_count));
  int count = 0;
  {
    cuda::Scratch ws(kMaxWorkspaceBytes);
    ENGINE_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
        handle(), c.wd, w, c.yd, gy, c.conv, c.xd, gx, max_count, &count, results.data(),
        ws.as<void>(), kMaxWorkspaceBytes));
  }
  const auto& best = pick(results, count, c.key);
  ConvAlgo a{best.algo, run_math(c.key, best.mathType), best.memory, best.time};
  c.set_math(a.math);
  size_t bytes = 0;
  ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle(), c.wd, c.yd, c.conv,
                                                                  c.xd, best.algo, &bytes));
  a.workspace = std::max(a.workspace, bytes);
  return a;
}

ConvAlgo find_backward_filter(ConvCall& c, const float* gy, const float* x, float* gw) {
  int max_count = 0;
  ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle(), &max_count));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> results(static_cast<size_t>(max_count));
  int count = 0;
  {
    cuda::Scratch ws(kMaxWorkspaceBytes);
    ENGINE_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        handle(), c.xd, x, c.yd, gy, c.conv, c.wd, gw, max_count, &count, results.data(),
        ws.as<void>(), kMaxWorkspaceBytes));
  }
  const auto& best = pick(results, count, c.key);
  ConvAlgo a{best.algo, run_math(c.key, best.mathType), best.memory, best.time};
  c.set_math(a.math);
  size_t bytes = 0;
  ENGINE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle(), c.xd, c.yd, c.conv,
                                                                    c.wd, best.algo, &bytes));
  a.workspace = std::max(a.workspace, bytes);
  return a;
}

// The bias as a [1, K, 1, 1] tensor, broadcast by cuDNN over N, OH and OW.
TensorDesc bias_desc(int64_t k) { return tensor_desc(1, k, 1, 1); }

void zero(Tensor& t) {
  if (t.defined() && t.numel() > 0) t.zero_();  // cudaMemsetAsync on stream()
}

const float kOne = 1.f, kZero = 0.f;  // alpha / beta: result = 1 * op + 0 * previous

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p) {
  if (!fits_cudnn({&x, &w, &y})) return ENGINE_NATIVE_KERNEL(conv2d_forward)(x, w, b, y, p);
  if (y.numel() == 0) return;
  ConvCall c(x.shape(), w, y.shape(), p, Direction::Forward);
  const ConvAlgo a = algorithm(c, [&] { return find_forward(c, fptr(x), fptr(w), fptr(y)); });
  c.set_math(a.math);
  cuda::Scratch ws(a.workspace);
  ENGINE_CUDNN_CHECK(cudnnConvolutionForward(handle(), &kOne, c.xd, fptr(x), c.wd, fptr(w), c.conv,
                                             static_cast<cudnnConvolutionFwdAlgo_t>(a.algo),
                                             ws.as<void>(), a.workspace, &kZero, c.yd, fptr(y)));
  if (b.defined()) {
    const TensorDesc bd = bias_desc(y.size(1));
    ENGINE_CUDNN_CHECK(cudnnAddTensor(handle(), &kOne, bd, fptr(b), &kOne, c.yd, fptr(y)));
  }
  // The activation, in place on y (see the top of the file).
  if (p.activation) kernel_table(Backend::Cudnn).activation_forward(*p.activation, y, y);
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p) {
  if (!fits_cudnn({&gy, &w, &gx})) return ENGINE_NATIVE_KERNEL(conv2d_backward_data)(gy, w, gx, p);
  if (gx.numel() == 0) return;
  if (gy.numel() == 0 || w.numel() == 0) return zero(gx);  // no output channels: no gradient
  ConvCall c(gx.shape(), w, gy.shape(), p, Direction::BackwardData);
  const ConvAlgo a =
      algorithm(c, [&] { return find_backward_data(c, fptr(gy), fptr(w), fptr(gx)); });
  c.set_math(a.math);
  cuda::Scratch ws(a.workspace);
  ENGINE_CUDNN_CHECK(
      cudnnConvolutionBackwardData(handle(), &kOne, c.wd, fptr(w), c.yd, fptr(gy), c.conv,
                                   static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo),
                                   ws.as<void>(), a.workspace, &kZero, c.xd, fptr(gx)));
}

// gw and gb are overwritten (beta = 0); gw may be undefined when only the bias gradient is wanted.
void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb,
                            const Conv2dParams& p) {
  if (!fits_cudnn({&gy, &x, &gw}))
    return ENGINE_NATIVE_KERNEL(conv2d_backward_weight)(gy, x, gw, gb, p);
  if (gy.numel() == 0 || x.numel() == 0) {  // empty batch: the sums over it are zero
    zero(gw);
    zero(gb);
    return;
  }
  if (gw.defined() && gw.numel() > 0) {
    ConvCall c(x.shape(), gw, gy.shape(), p, Direction::BackwardFilter);
    const ConvAlgo a =
        algorithm(c, [&] { return find_backward_filter(c, fptr(gy), fptr(x), fptr(gw)); });
    c.set_math(a.math);
    cuda::Scratch ws(a.workspace);
    ENGINE_CUDNN_CHECK(
        cudnnConvolutionBackwardFilter(handle(), &kOne, c.xd, fptr(x), c.yd, fptr(gy), c.conv,
                                       static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo),
                                       ws.as<void>(), a.workspace, &kZero, c.wd, fptr(gw)));
  }
  if (gb.defined()) {
    const TensorDesc gyd = tensor_desc(gy), bd = bias_desc(gy.size(1));
    ENGINE_CUDNN_CHECK(
        cudnnConvolutionBackwardBias(handle(), &kOne, gyd, fptr(gy), &kZero, bd, fptr(gb)));
  }
}

}  // namespace

void register_conv2d(KernelTable& t) {
  t.conv2d_forward = conv2d_forward;
  t.conv2d_backward_data = conv2d_backward_data;
  t.conv2d_backward_weight = conv2d_backward_weight;
}

}  // namespace cudnn

size_t conv_algo_cache_size() {
  std::lock_guard<std::mutex> lock(cudnn::g_cache_mu);
  return cudnn::g_cache.size();
}

}  // namespace engine
