// Conv2d + BatchNorm2d (+ activation) as inference computes it: with the BatchNorm in eval mode
// and no gradient wanted for either layer's parameters, y = act(bn(conv(x))) is one convolution
// with folded weights w' = w * g / sqrt(v + eps) and bias b' = (b - m) * g / sqrt(v + eps) + beta,
// so the normalisation costs no pass over the activations at all, and the activation is applied
// in the convolution's output pass. Otherwise (training-mode BatchNorm, trainable parameters,
// folding switched off, or a summary being taken) the layers run one after another as written.
//
// The folded weights are computed once and kept until the layers' state may have changed:
// Module::state_version() moves on load_state_dict, to(), train()/eval() and freezing, the
// only ways the engine changes frozen tensors. Code that writes into a frozen parameter's memory
// directly must call Module::touch_state() for the change to be seen.
#pragma once
#include <optional>

#include "layers/layers.h"

namespace engine {

// Process-wide switch (tests compare both paths); on by default, ENGINE_BN_FOLD=0 turns it off.
void set_bn_folding(bool on);
bool bn_folding();

// Folded weights of one (conv, bn) pair, rebuilt when stale.
class FoldedConvBn {
 public:
  // Whether the pair may be folded for this input now.
  static bool applies(const Conv2d& conv, const BatchNorm2d& bn, const Tensor& x);
  Tensor forward(Conv2d& conv, BatchNorm2d& bn, std::optional<Activation> act, const Tensor& x);

 private:
  Tensor w_, b_;
  uint64_t version_ = ~uint64_t(0);
  const void* key_[5] = {};
};

// torchvision's Conv2dNormActivation: children "0" Conv2d (no bias), "1" BatchNorm2d and, with an
// activation, "2" the activation; padding (kernel - 1) / 2.
class ConvBnAct : public Module {
 public:
  ConvBnAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups,
            std::optional<Activation> act, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2dNormActivation"; }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<ActivationLayer> act;  // null without an activation

 private:
  FoldedConvBn folded_;
};

// conv -> bn -> act as one call: folded when FoldedConvBn::applies, else the three modules in turn
// (act may be null).
Tensor conv_bn_act(Conv2d& conv, BatchNorm2d& bn, ActivationLayer* act, FoldedConvBn& folded,
                   const Tensor& x);

}  // namespace engine
