// What the transfer-learning models (torchvision's ResNet-50 and MobileNetV2) have in common: a
// backbone that ends in globally pooled features, and a head that maps them to logits. Frozen-
// backbone fine-tuning computes features() once per image and trains head() alone.
#pragma once
#include <string>
#include <vector>

#include "layers/layers.h"

namespace engine {

class TransferModel : public Module {
 public:
  // Everything up to and including the global average pool: [N, 3, H, W] -> [N, feature_dim()].
  virtual Tensor features(const Tensor& x) = 0;
  // The classifier on pooled features: [N, feature_dim()] -> [N, num_classes].
  virtual Tensor head(const Tensor& features) = 0;
  virtual int64_t feature_dim() const = 0;
  // The head's state_dict prefix ("fc" or "classifier") and the backbone's blocks in forward
  // order ("conv1", "bn1", "layer1.0", ... or "features.0", ...), the names --unfreeze-from takes.
  virtual std::string head_name() const = 0;
  virtual std::vector<std::string> block_names() const = 0;
  Tensor forward(const Tensor& x) override { return head(features(x)); }

 protected:
  // Input checks shared by both: [N, 3, H, W] with H, W >= 32 (the networks' total stride).
  void check_input(const Tensor& x) const;
};

// Freezes every parameter except the head's and, when `unfreeze_from` is not empty, those of the
// block it names and of every block after it. It takes a block ("layer4.1", "features.14") or a
// stage ("layer4": its first block); an unknown name is an error listing the valid ones.
void freeze_backbone(TransferModel& m, const std::string& unfreeze_from = "");

}  // namespace engine
