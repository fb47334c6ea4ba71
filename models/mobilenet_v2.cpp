// MobileNetV2 construction and forward; see mobilenet_v2.h.
#include "models/mobilenet_v2.h"

namespace engine {
namespace {
void init_convs(Module& m, Generator& gen) {
  for (auto& [name, t] : m.named_parameters()) {
    Tensor w = t;
    if (w.dim() == 4) init::kaiming_normal_(w, gen, /*fan_out=*/true);
  }
}
}  // namespace

InvertedResidual::InvertedResidual(int64_t in, int64_t out, int64_t stride, int64_t t,
                                   Generator& gen)
    : residual_(stride == 1 && in == out) {
  ENGINE_CHECK(stride == 1 || stride == 2, "InvertedResidual: stride must be 1 or 2, got ", stride);
  const int64_t hidden = in * t;
  conv = register_module("conv", std::make_shared<Sequential>());
  if (t != 1) stages_.push_back(std::make_shared<ConvBnAct>(in, hidden, 1, 1, 1, Activation::ReLU6, gen));
  stages_.push_back(
      std::make_shared<ConvBnAct>(hidden, hidden, 3, stride, hidden, Activation::ReLU6, gen));
  for (auto& s : stages_) conv->add(s);
  project_ = std::make_shared<Conv2d>(hidden, out, 1, Conv2dOptions{.bias = false}, gen);
  project_bn_ = std::make_shared<BatchNorm2d>(out);
  conv->add(project_).add(project_bn_);
  init_convs(*this, gen);
}

Tensor InvertedResidual::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& s : stages_) h = (*s)(h);
  h = conv_bn_act(*project_, *project_bn_, nullptr, folded_, h);
  return residual_ ? add(x, h) : h;
}

MobileNetV2::MobileNetV2(const MobileNetV2Options& o, Generator& gen) {
  ENGINE_CHECK(o.num_classes >= 1, "MobileNetV2: num_classes must be >= 1, got ", o.num_classes);
  features_seq = register_module("features", std::make_shared<Sequential>());
  auto first = std::make_shared<ConvBnAct>(3, 32, 3, 2, 1, Activation::ReLU6, gen);
  init_convs(*first, gen);
  features_seq->add(first);
  // (expansion t, channels c, repeats n, first stride s), torchvision's table.
  const int64_t setting[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                 {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t in = 32;
  for (const auto& [t, c, n, s] : setting) {
    for (int64_t i = 0; i < n; ++i) {
      features_seq->add(std::make_shared<InvertedResidual>(in, c, i == 0 ? s : 1, t, gen));
      in = c;
    }
  }
  auto last = std::make_shared<ConvBnAct>(in, 1280, 1, 1, 1, Activation::ReLU6, gen);
  init_convs(*last, gen);
  features_seq->add(last);
  classifier = register_module("classifier", std::make_shared<Sequential>());
  dropout_ = std::make_shared<Dropout>(o.dropout);
  auto fc = std::make_shared<Linear>(1280, o.num_classes, true, gen);
  init::normal_(fc->weight, 0.01f, gen);
  fc->bias.zero_();
  classifier->add(dropout_).add(fc);
}

Tensor MobileNetV2::features(const Tensor& x) {
  check_input(x);
  return adaptive_avg_pool2d((*features_seq)(x), 1, 1).flatten(1);
}

std::vector<std::string> MobileNetV2::block_names() const {
  std::vector<std::string> out;
  for (int i = 0; i <= 18; ++i) out.push_back("features." + std::to_string(i));
  return out;
}

}  // namespace engine
