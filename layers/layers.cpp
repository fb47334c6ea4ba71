// Layer constructors (shape checks, parameter registration, initialisation) and forwards.
#include "layers/layers.h"

#include <cmath>

#include "engine/autograd.h"

namespace engine {

namespace init {
int64_t fan_in(const Tensor& w) {
  ENGINE_CHECK(w.dim() >= 2, "init: fan_in needs a weight of rank >= 2, got ",
               shape_str(w.shape()));
  return w.numel() / w.size(0);
}

void kaiming_normal_(Tensor& w, Generator& gen, bool fan_out) {
  // PyTorch's fan_out is size(0) * receptive field, ignoring groups (depthwise layers too).
  const int64_t fan = fan_out ? w.size(0) * (w.numel() / (w.size(0) * w.size(1))) : fan_in(w);
  normal_(w, std::sqrt(2.0f / static_cast<float>(fan)), gen);
}

void normal_(Tensor& t, float stddev, Generator& gen) {
  float* p = t.data<float>();
  const int64_t n = t.numel();
  gen.fill_normal(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] = stddev * p[i];
}

void default_uniform_(Tensor& t, int64_t fan_in, Generator& gen) {
  const float bound = fan_in > 0 ? 1.0f / std::sqrt(static_cast<float>(fan_in)) : 0.f;
  float* p = t.data<float>();
  const int64_t n = t.numel();
  gen.fill_uniform(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] = (2.f * p[i] - 1.f) * bound;
}
}  // namespace init

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, Conv2dOptions o, Generator& gen) {
  ENGINE_CHECK(in > 0 && out > 0 && kernel > 0,
               "Conv2d: channels and kernel must be positive, got ", "in=", in, " out=", out,
               " kernel=", kernel);
  ENGINE_CHECK(o.groups > 0 && in % o.groups == 0 && out % o.groups == 0, "Conv2d: groups ",
               o.groups, " must divide in=", in, " and out=", out);
  ENGINE_CHECK(o.stride > 0 && o.padding >= 0, "Conv2d: stride must be positive and padding ",
               "non-negative, got stride=", o.stride, " padding=", o.padding);
  params.stride_h = params.stride_w = o.stride;
  params.pad_h = params.pad_w = o.padding;
  params.groups = o.groups;
  Tensor w = Tensor::empty({out, in / o.groups, kernel, kernel});
  const int64_t fan = init::fan_in(w);
  init::default_uniform_(w, fan, gen);
  weight = register_parameter("weight", w);
  if (o.bias) {
    Tensor b = Tensor::empty({out});
    init::default_uniform_(b, fan, gen);
    bias = register_parameter("bias", b);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, params); }

std::string Conv2d::extra_repr() const {
  return shape_str(weight.shape()) + " stride=" + std::to_string(params.stride_h) +
         " padding=" + std::to_string(params.pad_h) + " groups=" + std::to_string(params.groups);
}

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen) {
  ENGINE_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in=", in, " out=", out);
  Tensor w = Tensor::empty({out, in});
  init::default_uniform_(w, in, gen);
  weight = register_parameter("weight", w);
  if (has_bias) {
    Tensor b = Tensor::empty({out});
    init::default_uniform_(b, in, gen);
    bias = register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

BatchNorm2d::BatchNorm2d(int64_t channels, float eps_, float momentum_)
    : eps(eps_), momentum(momentum_) {
  ENGINE_CHECK(channels > 0, "BatchNorm2d: channels must be positive, got ", channels);
  weight = register_parameter("weight", Tensor::full({channels}, 1.f));
  bias = register_parameter("bias", Tensor::zeros({channels}));
  running_mean = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var = register_buffer("running_var", Tensor::full({channels}, 1.f));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::I64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  ENGINE_CHECK(x.dim() == 4, "BatchNorm2d: input must be 4-D [N, C, H, W], got ",
               shape_str(x.shape()));
  if (is_training()) ++num_batches_tracked.data<int64_t>()[0];  // host memory (Module::to)
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps);
}

MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, int64_t padding) {
  params.kernel_h = params.kernel_w = kernel;
  params.stride_h = params.stride_w = stride < 0 ? kernel : stride;
  params.pad_h = params.pad_w = padding;
}

AvgPool2d::AvgPool2d(int64_t kernel, int64_t stride, int64_t padding) {
  params.kernel_h = params.kernel_w = kernel;
  params.stride_h = params.stride_w = stride < 0 ? kernel : stride;
  params.pad_h = params.pad_w = padding;
}

std::string ActivationLayer::type_name() const {
  switch (kind) {
    case Activation::ReLU:
      return "ReLU";
    case Activation::ReLU6:
      return "ReLU6";
    case Activation::Sigmoid:
      return "Sigmoid";
    case Activation::Tanh:
      return "Tanh";
  }
  return "Activation";
}

Dropout::Dropout(float p_, Generator& gen) : p(p_), gen_(&gen) {
  ENGINE_CHECK(p >= 0.f && p <= 1.f, "Dropout: p must be in [0, 1], got ", p);
}

Sequential& Sequential::add(ModulePtr m) {
  ENGINE_CHECK(m, "Sequential::add: null module");
  register_module(std::to_string(layers_.size()), m);
  layers_.push_back(std::move(m));
  return *this;
}

// A Conv2d followed by an activation layer runs as one convolution with the activation applied
// in its output pass (Conv2dParams::activation): no pass of its own over the output, and no
// pre-activation tensor kept; the backward computes act'(y) dy from the same saved output as the
// activation op would, so values and gradients are the same as the two layers in turn. Unfused
// while a summary runs (one row per layer) or when either layer has its own backend override.
Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto* conv = dynamic_cast<Conv2d*>(layers_[i].get());
    auto* act =
        i + 1 < layers_.size() ? dynamic_cast<ActivationLayer*>(layers_[i + 1].get()) : nullptr;
    if (conv && act && !conv->params.activation && !summary_active() && !conv->backend() &&
        !act->backend()) {
      Conv2dParams p = conv->params;
      p.activation = act->kind;
      h = conv2d(h, conv->weight, conv->bias, p);
      ++i;
      continue;
    }
    h = (*layers_[i])(h);
  }
  return h;
}

}  // namespace engine
