// Construction of the four custom CNN variants.
#include "models/custom_cnn.h"

#include <cmath>

namespace engine {

CnnVariant parse_cnn_variant(const std::string& name) {
  if (name == "simple") return CnnVariant::Simple;
  if (name == "bn_dropout") return CnnVariant::BnDropout;
  if (name == "sigmoid") return CnnVariant::Sigmoid;
  if (name == "tanh") return CnnVariant::Tanh;
  throw Error("unknown model '" + name + "' (expected simple, bn_dropout, sigmoid or tanh)");
}

const char* cnn_variant_name(CnnVariant v) {
  switch (v) {
    case CnnVariant::Simple: return "simple";
    case CnnVariant::BnDropout: return "bn_dropout";
    case CnnVariant::Sigmoid: return "sigmoid";
    case CnnVariant::Tanh: return "tanh";
  }
  return "?";
}

namespace {
Activation activation_of(CnnVariant v) {
  switch (v) {
    case CnnVariant::Sigmoid: return Activation::Sigmoid;
    case CnnVariant::Tanh: return Activation::Tanh;
    default: return Activation::ReLU;
  }
}
}  // namespace

CustomCnn::CustomCnn(const CustomCnnOptions& o, Generator& gen) : opt_(o) {
  ENGINE_CHECK(o.image_size >= 8 && o.image_size % 8 == 0, "CustomCnn: image_size must be a ",
               "positive multiple of 8 (three 2x2 poolings), got ", o.image_size);
  ENGINE_CHECK(o.num_classes >= 1, "CustomCnn: num_classes must be >= 1, got ", o.num_classes);
  ENGINE_CHECK(o.width > 0.f, "CustomCnn: width must be positive, got ", o.width);
  auto ch = [&](int64_t c) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::lround(c * o.width)));
  };
  const Activation act = activation_of(o.variant);
  const bool bn = o.variant == CnnVariant::BnDropout;

  auto block = [&](int64_t in, int64_t c1, int64_t c2, int64_t c3) {
    auto seq = std::make_shared<Sequential>();
    int64_t prev = in;
    for (int64_t c : {c1, c2, c3}) {
      auto conv = std::make_shared<Conv2d>(prev, c, 3, Conv2dOptions{.stride = 1, .padding = 1}, gen);
      init::kaiming_normal_(conv->weight, gen);
      conv->bias.zero_();
      seq->add(conv);
      if (bn) seq->add(std::make_shared<BatchNorm2d>(c));
      seq->add(std::make_shared<ActivationLayer>(act));
      prev = c;
    }
    seq->add(std::make_shared<MaxPool2d>(2));
    return seq;
  };
  seq1_ = register_module("seq1", block(3, ch(32), ch(64), ch(64)));
  seq2_ = register_module("seq2", block(ch(64), ch(128), ch(256), ch(256)));
  seq3_ = register_module("seq3", block(ch(256), ch(512), ch(1024), ch(1024)));

  const int64_t side = o.image_size / 8, hidden = ch(256);
  auto fc = [&](int64_t in, int64_t out) {
    auto l = std::make_shared<Linear>(in, out, true, gen);
    init::kaiming_normal_(l->weight, gen);
    l->bias.zero_();
    return l;
  };
  fc1_ = register_module("fc1", fc(ch(1024) * side * side, hidden));
  fc2_ = register_module("fc2", fc(hidden, hidden));
  fc3_ = register_module("fc3", fc(hidden, o.num_classes));
  act1_ = register_module("act1", std::make_shared<ActivationLayer>(act));
  act2_ = register_module("act2", std::make_shared<ActivationLayer>(act));
  if (bn) dropout_ = register_module("dropout", std::make_shared<Dropout>(o.dropout));
}

Tensor CustomCnn::forward(const Tensor& x) { return head(features(x)); }

Tensor CustomCnn::features(const Tensor& x) {
  ENGINE_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == opt_.image_size &&
                   x.size(3) == opt_.image_size,
               "CustomCnn(", cnn_variant_name(opt_.variant), "): expected input [N, 3, ",
               opt_.image_size, ", ", opt_.image_size, "], got ", shape_str(x.shape()));
  Tensor h = (*seq3_)((*seq2_)((*seq1_)(x)));
  h = (*act1_)((*fc1_)(h.flatten(1)));
  if (dropout_) h = (*dropout_)(h);
  return (*act2_)((*fc2_)(h));
}

}  // namespace engine
