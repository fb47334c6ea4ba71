// ResNet-50 construction and forward; see resnet.h.
#include "models/resnet.h"

namespace engine {
namespace {
std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, Generator& gen) {
  auto c = std::make_shared<Conv2d>(
      in, out, k, Conv2dOptions{.stride = stride, .padding = (k - 1) / 2, .bias = false}, gen);
  init::kaiming_normal_(c->weight, gen, /*fan_out=*/true);
  return c;
}
}  // namespace

Bottleneck::Bottleneck(int64_t in, int64_t width, int64_t stride, Generator& gen) {
  const int64_t out = width * kExpansion;
  conv1 = register_module("conv1", conv(in, width, 1, 1, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(width));
  conv2 = register_module("conv2", conv(width, width, 3, stride, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(width));
  conv3 = register_module("conv3", conv(width, out, 1, 1, gen));
  bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(out));
  relu = register_module("relu", std::make_shared<ActivationLayer>(Activation::ReLU));
  if (stride != 1 || in != out) {
    ds_conv_ = conv(in, out, 1, stride, gen);
    ds_bn_ = std::make_shared<BatchNorm2d>(out);
    downsample = std::make_shared<Sequential>();
    downsample->add(ds_conv_).add(ds_bn_);
    register_module("downsample", downsample);
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor h = conv_bn_act(*conv1, *bn1, relu.get(), f1_, x);
  h = conv_bn_act(*conv2, *bn2, relu.get(), f2_, h);
  h = conv_bn_act(*conv3, *bn3, nullptr, f3_, h);
  Tensor identity = downsample ? (Module::summary_active()
                                      ? (*downsample)(x)
                                      : conv_bn_act(*ds_conv_, *ds_bn_, nullptr, fd_, x))
                               : x;
  return (*relu)(add(h, identity));
}

ResNet50::ResNet50(const ResNetOptions& o, Generator& gen) {
  ENGINE_CHECK(o.num_classes >= 1, "ResNet50: num_classes must be >= 1, got ", o.num_classes);
  conv1 = register_module("conv1", conv(3, 64, 7, 2, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  relu = register_module("relu", std::make_shared<ActivationLayer>(Activation::ReLU));
  maxpool = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  int64_t in = 64;
  auto layer = [&](const char* name, int64_t width, int64_t blocks, int64_t stride) {
    auto seq = std::make_shared<Sequential>();
    for (int64_t i = 0; i < blocks; ++i) {
      seq->add(std::make_shared<Bottleneck>(in, width, i == 0 ? stride : 1, gen));
      in = width * Bottleneck::kExpansion;
    }
    return register_module(name, seq);
  };
  layer1 = layer("layer1", 64, 3, 1);
  layer2 = layer("layer2", 128, 4, 2);
  layer3 = layer("layer3", 256, 6, 2);
  layer4 = layer("layer4", 512, 3, 2);
  avgpool = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  fc = register_module("fc", std::make_shared<Linear>(2048, o.num_classes, true, gen));
}

Tensor ResNet50::features(const Tensor& x) {
  check_input(x);
  Tensor h = (*maxpool)(conv_bn_act(*conv1, *bn1, relu.get(), f1_, x));
  h = (*layer4)((*layer3)((*layer2)((*layer1)(h))));
  return (*avgpool)(h).flatten(1);
}

std::vector<std::string> ResNet50::block_names() const {
  std::vector<std::string> out = {"conv1", "bn1"};
  const int blocks[4] = {3, 4, 6, 3};
  for (int l = 0; l < 4; ++l)
    for (int b = 0; b < blocks[l]; ++b)
      out.push_back("layer" + std::to_string(l + 1) + "." + std::to_string(b));
  return out;
}

}  // namespace engine
