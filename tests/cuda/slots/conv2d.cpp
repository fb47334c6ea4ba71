// The cross-backend harness's cases for the conv2d slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// conv2d: forward and backward data {0, 1e-5} native, {0, 1e-4} cudnn; backward weight gw
// {0, 1e-4} both, gb {0, 1e-5} native, {0, 1e-4} cudnn. Each output is a dot product of up to
// 4608 (forward, data) or 50176 (weight) terms summed in another order than the CPU's (which may
// also go through Winograd's transforms): rounding errors of random-signed terms grow like
// sqrt(K) * 2^-24 * sqrt(sum of squares), a few 1e-7 of max|ref| (largest seen: 2.6e-6, 256 ->
// 512 against the CPU's Winograd), 20x more terms for the weight. cuDNN may pick FFT or Winograd
// algorithms, which round differently again. The error of a sum does not shrink with the
// element, so atol carries it.
// conv2d_forward with an activation (Conv2dParams::activation, the fused epilogue): the
// convolution's tolerance carried through the activation. relu, relu6, sigmoid and tanh are
// 1-Lipschitz, so the pre-activation's error bound, conv atol * max|z| (z = conv + b), bounds the
// output's; EXPECT_MATCHES scales atol by max|y|, which relu6, sigmoid and tanh keep far below
// max|z|, so atol is conv atol * max|z| / max|y|. sigmoid and tanh add the activation slot's own
// rtol (device expf/tanhf or cuDNN's against the CPU's Cephes polynomials: 2e-6 native, 9e-6 and
// an atol of 1e-6 cudnn, see activation.cpp here); relu and relu6 add nothing (a select).
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

Shape x_shape(const ConvCase& c) { return {c.n, c.cin, c.h, c.w}; }
Shape w_shape(const ConvCase& c) { return {c.cout, c.cin / c.p.groups, c.kh, c.kw}; }
Shape y_shape(const ConvCase& c) {
  const int64_t oh = (c.h + 2 * c.p.pad_h - c.p.dilation_h * (c.kh - 1) - 1) / c.p.stride_h + 1;
  const int64_t ow = (c.w + 2 * c.p.pad_w - c.p.dilation_w * (c.kw - 1) - 1) / c.p.stride_w + 1;
  return {c.n, c.cout, oh, ow};
}

Conv2dParams asymmetric_params() {  // 3x5 kernel, stride (2, 1), padding (1, 2), 3 groups
  Conv2dParams p = conv_params(1, 1, 1, 3);
  p.stride_h = 2, p.pad_w = 2;
  return p;
}

struct ConvEntry {
  ConvCase c;
  bool large;  // main variants only, to keep the test short
};

// Odd sizes, every parameter, channel counts that are no multiple of any tile, the study's first
// layer and a deep layer (K = 2304), cuDNN's FFT/Winograd territory (64 -> 64 3x3), and large
// tensors: more work than one grid covers, so the depthwise kernels' grid-stride loops go round
// (4 x 32 planes of 112x112; 8 x 2600 planes of 7x7 taken five to a block: 4160 block rows for
// 4096 blocks), and a GEMM with thousands of tiles.
const std::vector<ConvEntry>& conv_cases() {
  auto p = [](int64_t s, int64_t pad, int64_t d = 1, int64_t g = 1) {
    return conv_params(s, pad, d, g);
  };
  static const std::vector<ConvEntry> c = {
      {{"batch 1, 7x9, 3x3 pad 1", 1, 3, 7, 9, 4, 3, 3, p(1, 1)}, false},
      {{"batch 3, 13x13, stride 2", 3, 5, 13, 13, 7, 3, 3, p(2, 1)}, false},
      {{"9x7, pad 0", 2, 4, 9, 7, 6, 3, 3, p(1, 0)}, false},
      {{"pad 3", 1, 3, 8, 8, 5, 3, 3, p(1, 3)}, false},
      {{"dilation 2", 2, 4, 11, 10, 6, 3, 3, p(1, 2, 2)}, false},
      {{"dilation 2, 3 -> 4, 13x12", 2, 3, 13, 12, 4, 3, 3, p(1, 2, 2)}, false},
      {{"1x1", 3, 16, 7, 7, 24, 1, 1, p(1, 0)}, false},
      {{"1x1, 16 -> 7, 5x5", 2, 16, 5, 5, 7, 1, 1, p(1, 0)}, false},
      {{"1x1 stride 2", 2, 16, 9, 9, 8, 1, 1, p(2, 0)}, false},
      {{"7x7 stride 2 pad 3 (ResNet stem)", 2, 3, 32, 30, 8, 7, 7, p(2, 3)}, false},
      {{"7x7 stride 2 pad 3, 33x31", 2, 3, 33, 31, 8, 7, 7, p(2, 3)}, false},
      {{"groups 2, 6 -> 10", 2, 6, 9, 11, 10, 3, 3, p(1, 1, 1, 2)}, false},
      {{"groups 2, 6 -> 4, pad 0", 3, 6, 8, 7, 4, 3, 3, p(1, 0, 1, 2)}, false},
      {{"groups 3, 3x5 kernel, stride (2, 1)", 2, 9, 10, 12, 6, 3, 5, asymmetric_params()}, false},
      {{"64 -> 128 stride 2, 15x15", 2, 64, 15, 15, 128, 3, 3, p(2, 1)}, false},
      {{"64 -> 64 3x3 at 16x16 (FFT / Winograd territory)", 4, 64, 16, 16, 64, 3, 3, p(1, 1)},
       false},
      {{"depthwise 3x3, C 17", 3, 17, 13, 13, 17, 3, 3, p(1, 1, 1, 17)}, false},
      {{"depthwise 3x3, C 8, 9x9", 2, 8, 9, 9, 8, 3, 3, p(1, 1, 1, 8)}, false},
      {{"depthwise 3x3 stride 2, C 32", 2, 32, 14, 14, 32, 3, 3, p(2, 1, 1, 32)}, false},
      {{"depthwise 5x5, C 17, batch 1", 1, 17, 12, 11, 17, 5, 5, p(1, 2, 1, 17)}, false},
      {{"depthwise 3x3 stride 2 dilation 2", 2, 8, 15, 9, 8, 3, 3, p(2, 2, 2, 8)}, false},
      {{"channel multiplier 2 (not depthwise)", 2, 4, 9, 9, 8, 3, 3, p(1, 1, 1, 4)}, false},
      {{"3 -> 32 at 64x64 (first layer)", 2, 3, 64, 64, 32, 3, 3, p(1, 1)}, false},
      {{"256 -> 512 at 16x16", 2, 256, 16, 16, 512, 3, 3, p(1, 1)}, false},
      {{"depthwise 3x3, 4 x 32 x 112x112", 4, 32, 112, 112, 32, 3, 3, p(1, 1, 1, 32)}, true},
      {{"depthwise 3x3, 8 x 2600 x 7x7", 8, 2600, 7, 7, 2600, 3, 3, p(1, 1, 1, 2600)}, true},
      {{"16 -> 24 at 96x96, batch 4", 4, 16, 96, 96, 24, 3, 3, p(1, 1)}, true},
  };
  return c;
}

Tol conv_tol(Backend b) { return cudnn(b) ? Tol{0, 1e-4} : Tol{0, 1e-5}; }
Tol conv_bias_tol(Backend b) { return cudnn(b) ? Tol{0, 1e-4} : Tol{0, 1e-5}; }
constexpr Tol kConvWeightTol{0, 1e-4};

void conv_forward(Backend b, const ConvCase& c, bool bias, uint64_t seed) {
  SCOPED_TRACE(c.name + (bias ? ", bias" : ", no bias"));
  const Tensor x = randn(x_shape(c), seed), w = randn(w_shape(c), seed + 1);
  const Tensor bs = bias ? randn({c.cout}, seed + 2) : Tensor();
  Tensor ref = Tensor::empty(y_shape(c));
  cpu().conv2d_forward(x, w, bs, ref, c.p);
  Tensor y = poisoned(y_shape(c));
  kernel_table(b).conv2d_forward(on_cuda(x), on_cuda(w), on_cuda(bs), y, c.p);
  EXPECT_MATCHES(y, ref, conv_tol(b));
}

// The forward with an activation in the epilogue against the CPU's (itself checked against
// PyTorch and against conv2d + activation in tests/test_conv_linear.cpp). Weights of stddev
// 3/sqrt(fan-in) put the pre-activations at a few units: relu6 clamps at both ends, sigmoid and
// tanh are neither linear nor saturated.
void conv_forward_activation(Backend b, const ConvCase& c, Activation a, uint64_t seed) {
  SCOPED_TRACE(c.name + ", " + activation_name(a));
  const double fan_in = static_cast<double>(c.cin / c.p.groups * c.kh * c.kw);
  const Tensor x = randn(x_shape(c), seed);
  const Tensor w = randn(w_shape(c), seed + 1, 0.f, static_cast<float>(3 / std::sqrt(fan_in)));
  const Tensor bs = randn({c.cout}, seed + 2);
  Conv2dParams p = c.p;
  p.activation = a;
  Tensor z = Tensor::empty(y_shape(c)), ref = Tensor::empty(y_shape(c));
  cpu().conv2d_forward(x, w, bs, z, c.p);
  cpu().conv2d_forward(x, w, bs, ref, p);
  Tensor y = poisoned(y_shape(c));
  kernel_table(b).conv2d_forward(on_cuda(x), on_cuda(w), on_cuda(bs), y, p);
  const bool smooth = a == Activation::Sigmoid || a == Activation::Tanh;
  const Tol act = !smooth ? kExact : cudnn(b) ? Tol{9e-6, 1e-6} : Tol{2e-6, 0};
  const double carried = conv_tol(b).atol * max_abs(z) / max_abs(ref);
  EXPECT_MATCHES(y, ref, (Tol{act.rtol, act.atol + carried}));
}

// Cases that reach each kernel's epilogue: the implicit GEMM (the ResNet stem, 1x1 with and
// without stride, grouped, a deep 3x3 layer) and the depthwise kernel (3x3, unrolled, with
// stride; 5x5, the general one).
const std::vector<ConvCase>& activation_cases() {
  static const std::vector<ConvCase> c = [] {
    std::vector<ConvCase> v;
    for (const ConvEntry& e : conv_cases()) {
      for (const char* name : {"7x7 stride 2 pad 3 (ResNet stem)", "1x1", "1x1 stride 2",
                               "groups 2, 6 -> 10", "64 -> 128 stride 2, 15x15",
                               "depthwise 3x3 stride 2, C 32", "depthwise 5x5, C 17, batch 1"})
        if (e.c.name == name) v.push_back(e.c);
    }
    return v;
  }();
  return c;
}

void conv_backward_data(Backend b, const ConvCase& c, uint64_t seed) {
  SCOPED_TRACE(c.name);
  const Tensor gy = randn(y_shape(c), seed), w = randn(w_shape(c), seed + 1);
  Tensor ref = Tensor::empty(x_shape(c));
  cpu().conv2d_backward_data(gy, w, ref, c.p);
  Tensor gx = poisoned(x_shape(c));
  kernel_table(b).conv2d_backward_data(on_cuda(gy), on_cuda(w), gx, c.p);
  EXPECT_MATCHES(gx, ref, conv_tol(b));
}

// want_w / want_b: which of gw and gb are asked for (the other stays undefined).
void conv_backward_weight(Backend b, const ConvCase& c, bool want_w, bool want_b, uint64_t seed) {
  SCOPED_TRACE(c.name + (want_w ? ", gw" : "") + (want_b ? ", gb" : ""));
  const Tensor gy = randn(y_shape(c), seed), x = randn(x_shape(c), seed + 1);
  Tensor gw_ref = empty_if(want_w, w_shape(c)), gb_ref = empty_if(want_b, {c.cout});
  cpu().conv2d_backward_weight(gy, x, gw_ref, gb_ref, c.p);
  Tensor gw = poisoned_if(want_w, w_shape(c)), gb = poisoned_if(want_b, {c.cout});
  kernel_table(b).conv2d_backward_weight(on_cuda(gy), on_cuda(x), gw, gb, c.p);
  if (want_w) {
    EXPECT_MATCHES(gw, gw_ref, kConvWeightTol);
  }
  if (want_b) {
    EXPECT_MATCHES(gb, gb_ref, conv_bias_tol(b));
  }
}

ENGINE_SLOT_CHECK(conv2d_forward) {
  uint64_t seed = 100;
  for (const ConvEntry& e : conv_cases()) {
    if (!e.large) conv_forward(b, e.c, false, seed += 10);
    conv_forward(b, e.c, true, seed += 10);
  }
  EXPECT_EQ(activation_cases().size(), 7u);  // every name above found
  for (const ConvCase& c : activation_cases())
    for (Activation a :
         {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh})
      conv_forward_activation(b, c, a, seed += 10);
}

ENGINE_SLOT_CHECK(conv2d_backward_data) {
  uint64_t seed = 1000;
  for (const ConvEntry& e : conv_cases()) conv_backward_data(b, e.c, seed += 10);
}

ENGINE_SLOT_CHECK(conv2d_backward_weight) {
  uint64_t seed = 2000;
  for (const ConvEntry& e : conv_cases()) {
    conv_backward_weight(b, e.c, true, true, seed += 10);
    if (e.large) continue;
    conv_backward_weight(b, e.c, true, false, seed += 10);
    conv_backward_weight(b, e.c, false, true, seed += 10);
  }
}

}  // namespace

Conv2dParams conv_params(int64_t stride, int64_t pad, int64_t dilation, int64_t groups) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

void check_conv2d_passes(Backend b, const ConvCase& c, uint64_t seed) {
  conv_forward(b, c, true, seed);
  conv_backward_data(b, c, seed + 10);
  conv_backward_weight(b, c, true, true, seed + 20);
}

}  // namespace engine::testing
