// The study's ensemble (its MyEnsemble): a fine-tuned ResNet-50 (modelA) and a fine-tuned
// MobileNetV2 (modelB) side by side on the same image, their class logits concatenated
// (2 x classes values) into fc1 = Linear(2 x classes, classes). State-dict names are the study's:
// modelA.*, modelB.*, fc1.*. Both members' backbones are always frozen; their heads train only
// when asked (train --train-heads).
//
// As a TransferModel its features are both members' pooled features side by side (2048 + 1280)
// and its head is the rest (each member's head on its part, the concatenation, fc1), so frozen
// fine-tuning trains from cached features exactly as for one backbone.
#pragma once
#include <memory>

#include "models/mobilenet_v2.h"
#include "models/resnet.h"

namespace engine {

class Ensemble : public TransferModel {
 public:
  Ensemble(int64_t num_classes, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;  // fc1(member_logits(x))
  // The input of fc1, the penultimate layer: both members' logits side by side, [N, 2 x classes].
  // (features() is the TransferModel's: the pooled backbone features that fine-tuning caches.)
  Tensor member_logits(const Tensor& x);
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& f) override;
  int64_t feature_dim() const override { return 2048 + 1280; }
  std::string head_name() const override { return "fc1"; }
  // The members are frozen whole; nothing inside them can be unfrozen block by block.
  std::vector<std::string> block_names() const override { return {}; }
  std::string type_name() const override { return "Ensemble"; }
  // Freezes both members; with train_heads their heads (modelA.fc, modelB.classifier) train.
  void freeze_members(bool train_heads);

  std::shared_ptr<ResNet50> modelA;
  std::shared_ptr<MobileNetV2> modelB;
  std::shared_ptr<Linear> fc1;
};

}  // namespace engine
