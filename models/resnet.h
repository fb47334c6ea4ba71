// ResNet-50 exactly as torchvision's resnet50 (v1.5: the stride of a downsampling bottleneck is on
// its 3x3 conv): conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2 pad 1 -> layer1..layer4 of 3, 4, 6, 3
// bottlenecks (1x1 -> 3x3 -> 1x1 x4 channels, downsample = 1x1 conv + BN on the first of each
// layer) -> global average pool -> fc. Parameter and buffer names are torchvision's state_dict
// keys (320 entries, 25,557,032 parameters with the 1000-class head), so converted ImageNet
// weights load as they are. Initialisation is torchvision's (Kaiming normal, fan_out, for convs;
// BN weight 1, bias 0; PyTorch's default Linear for fc) drawn from the engine's generator.
#pragma once
#include <memory>

#include "layers/fused.h"
#include "models/transfer.h"

namespace engine {

class Bottleneck : public Module {
 public:
  Bottleneck(int64_t in, int64_t width, int64_t stride, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Bottleneck"; }
  static constexpr int64_t kExpansion = 4;

  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<ActivationLayer> relu;
  std::shared_ptr<Sequential> downsample;  // null when the shapes already match

 private:
  std::shared_ptr<Conv2d> ds_conv_;  // downsample's "0" and "1"
  std::shared_ptr<BatchNorm2d> ds_bn_;
  FoldedConvBn f1_, f2_, f3_, fd_;
};

struct ResNetOptions {
  int64_t num_classes = 1000;
};

class ResNet50 : public TransferModel {
 public:
  explicit ResNet50(const ResNetOptions& o = {}, Generator& gen = default_generator());
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& f) override { return (*fc)(f); }
  int64_t feature_dim() const override { return 2048; }
  std::string head_name() const override { return "fc"; }
  std::vector<std::string> block_names() const override;
  std::string type_name() const override { return "ResNet"; }

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<ActivationLayer> relu;
  std::shared_ptr<MaxPool2d> maxpool;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool;
  std::shared_ptr<Linear> fc;

 private:
  FoldedConvBn f1_;
};

}  // namespace engine
