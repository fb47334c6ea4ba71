// BatchNorm folding for inference; see fused.h.
#include "layers/fused.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "engine/autograd.h"

namespace engine {
namespace {
bool initial_folding() {
  const char* v = std::getenv("ENGINE_BN_FOLD");
  return !(v && std::strcmp(v, "0") == 0);
}
bool g_folding = initial_folding();

bool trainable(const Tensor& t) { return t.defined() && t.requires_grad(); }
}  // namespace

void set_bn_folding(bool on) { g_folding = on; }
bool bn_folding() { return g_folding; }

bool FoldedConvBn::applies(const Conv2d& conv, const BatchNorm2d& bn, const Tensor& x) {
  (void)x;  // the folded conv is differentiable in x, so x may require grad
  return g_folding && !bn.is_training() && !Module::summary_active() && !trainable(conv.weight) &&
         !trainable(conv.bias) && !trainable(bn.weight) && !trainable(bn.bias);
}

Tensor FoldedConvBn::forward(Conv2d& conv, BatchNorm2d& bn, std::optional<Activation> act,
                             const Tensor& x) {
  const void* key[5] = {conv.weight.raw_data(), bn.weight.raw_data(), bn.bias.raw_data(),
                        bn.running_mean.raw_data(), bn.running_var.raw_data()};
  if (!w_.defined() || version_ != Module::state_version() || std::memcmp(key, key_, sizeof key) != 0 ||
      w_.device() != x.device()) {
    autograd::NoGradGuard no_grad;
    const Device host = Device::cpu();
    Tensor w = conv.weight.to(host);
    Tensor g = bn.weight.to(host), beta = bn.bias.to(host);
    Tensor m = bn.running_mean.to(host), v = bn.running_var.to(host);
    const int64_t cout = w.size(0), per = w.numel() / cout;
    Tensor wf = Tensor::empty(w.shape()), bf = Tensor::empty({cout});
    const float* cb = conv.bias.defined() ? conv.bias.to(host).data<float>() : nullptr;
    for (int64_t o = 0; o < cout; ++o) {
      // In double, so that the folded weights are the float nearest to the exact product.
      const double s = double(g.data<float>()[o]) / std::sqrt(double(v.data<float>()[o]) + bn.eps);
      const float* src = w.data<float>() + o * per;
      float* dst = wf.data<float>() + o * per;
      for (int64_t i = 0; i < per; ++i) dst[i] = float(double(src[i]) * s);
      const double b0 = cb ? cb[o] : 0.0;
      bf.data<float>()[o] = float((b0 - m.data<float>()[o]) * s + beta.data<float>()[o]);
    }
    w_ = wf.to(x.device());
    b_ = bf.to(x.device());
    version_ = Module::state_version();
    std::memcpy(key_, key, sizeof key);
  }
  Conv2dParams p = conv.params;
  p.activation = act;  // applied in the convolution's output pass
  return conv2d(x, w_, b_, p);
}

ConvBnAct::ConvBnAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups,
                     std::optional<Activation> a, Generator& gen) {
  conv = register_module(
      "0", std::make_shared<Conv2d>(in, out, kernel,
                                    Conv2dOptions{.stride = stride,
                                                  .padding = (kernel - 1) / 2,
                                                  .groups = groups,
                                                  .bias = false},
                                    gen));
  bn = register_module("1", std::make_shared<BatchNorm2d>(out));
  if (a) act = register_module("2", std::make_shared<ActivationLayer>(*a));
}

Tensor ConvBnAct::forward(const Tensor& x) { return conv_bn_act(*conv, *bn, act.get(), folded_, x); }

Tensor conv_bn_act(Conv2d& conv, BatchNorm2d& bn, ActivationLayer* act, FoldedConvBn& folded,
                   const Tensor& x) {
  if (FoldedConvBn::applies(conv, bn, x)) {
    return folded.forward(conv, bn, act ? std::optional<Activation>(act->kind) : std::nullopt, x);
  }
  Tensor y = bn(conv(x));
  return act ? (*act)(y) : y;
}

}  // namespace engine
