// The study's four custom CNNs, as its code defines them: three blocks (seq1, seq2, seq3) of three
// 3x3 convolutions with padding 1, each followed by the activation (and, in bn_dropout, a
// BatchNorm2d before it), then MaxPool2d(2); channels 3->32->64->64, 64->128->256->256,
// 256->512->1024->1024; flatten -> fc1 (256) -> act [-> Dropout(0.5)] -> fc2 (256) -> act -> fc3.
// Every conv and linear starts from Kaiming-normal weights (fan_in, ReLU gain) and zero biases.
#pragma once
#include <memory>
#include <string>

#include "layers/layers.h"

namespace engine {

enum class CnnVariant { Simple, BnDropout, Sigmoid, Tanh };
CnnVariant parse_cnn_variant(const std::string& name);  // simple | bn_dropout | sigmoid | tanh
const char* cnn_variant_name(CnnVariant v);

struct CustomCnnOptions {
  CnnVariant variant = CnnVariant::Simple;
  int64_t num_classes = 6;
  int64_t image_size = 64;  // square RGB input; must be a multiple of 8
  float width = 1.0f;       // multiplies every conv channel count and the hidden width (tests)
  float dropout = 0.5f;     // bn_dropout only
};

class CustomCnn : public Module {
 public:
  explicit CustomCnn(const CustomCnnOptions& o, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;  // head(features(x))
  // The penultimate layer: fc2's activation, [N, hidden] (the input of fc3). Explorers embed it.
  Tensor features(const Tensor& x);
  // fc3 on features(): the logits.
  Tensor head(const Tensor& features) { return (*fc3_)(features); }
  std::string type_name() const override { return "CustomCnn"; }
  const CustomCnnOptions& options() const { return opt_; }
  // The bn_dropout variant's Dropout layer (null for the others), so callers can seed it.
  Dropout* dropout_layer() { return dropout_.get(); }

 private:
  CustomCnnOptions opt_;
  std::shared_ptr<Sequential> seq1_, seq2_, seq3_;
  std::shared_ptr<Linear> fc1_, fc2_, fc3_;
  std::shared_ptr<ActivationLayer> act1_, act2_;
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace engine
