// MobileNetV2 (width 1.0) exactly as torchvision's mobilenet_v2: features.0 a 3x3/2 conv to 32
// channels, features.1..17 inverted residual blocks (1x1 expansion by t -> depthwise 3x3 ->
// 1x1 projection, each conv followed by BN, ReLU6 after the first two; a residual add when
// stride is 1 and the channels match), features.18 a 1x1 conv to 1280, then global average pool
// and classifier = [Dropout(0.2), Linear(1280, classes)]. Names are torchvision's state_dict keys
// (features.N.conv.0.0.weight, ...; 314 entries, 3,504,872 parameters with the 1000-class head).
// Initialisation is torchvision's: Kaiming normal (fan_out) convs, BN 1/0, Linear N(0, 0.01)
// with zero bias.
#pragma once
#include <memory>

#include "layers/fused.h"
#include "models/transfer.h"

namespace engine {

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "InvertedResidual"; }
  std::shared_ptr<Sequential> conv;

 private:
  bool residual_;
  std::vector<std::shared_ptr<ConvBnAct>> stages_;  // expansion (optional) and depthwise
  std::shared_ptr<Conv2d> project_;
  std::shared_ptr<BatchNorm2d> project_bn_;
  FoldedConvBn folded_;
};

struct MobileNetV2Options {
  int64_t num_classes = 1000;
  float dropout = 0.2f;
};

class MobileNetV2 : public TransferModel {
 public:
  explicit MobileNetV2(const MobileNetV2Options& o = {}, Generator& gen = default_generator());
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& f) override { return (*classifier)(f); }
  int64_t feature_dim() const override { return 1280; }
  std::string head_name() const override { return "classifier"; }
  std::vector<std::string> block_names() const override;
  std::string type_name() const override { return "MobileNetV2"; }
  // classifier.0, so that callers can seed it.
  Dropout& dropout_layer() { return *dropout_; }

  std::shared_ptr<Sequential> features_seq, classifier;

 private:
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace engine
