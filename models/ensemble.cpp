// The study's ensemble; see ensemble.h.
#include "models/ensemble.h"

#include "engine/autograd.h"

namespace engine {

Ensemble::Ensemble(int64_t num_classes, Generator& gen) {
  ENGINE_CHECK(num_classes >= 1, "Ensemble: num_classes must be >= 1, got ", num_classes);
  modelA = register_module("modelA", std::make_shared<ResNet50>(
                                         ResNetOptions{.num_classes = num_classes}, gen));
  modelB = register_module("modelB", std::make_shared<MobileNetV2>(
                                         MobileNetV2Options{.num_classes = num_classes}, gen));
  fc1 = register_module("fc1", std::make_shared<Linear>(2 * num_classes, num_classes, true, gen));
}

Tensor Ensemble::forward(const Tensor& x) { return (*fc1)(member_logits(x)); }

Tensor Ensemble::member_logits(const Tensor& x) { return concat({(*modelA)(x), (*modelB)(x)}, 1); }

Tensor Ensemble::features(const Tensor& x) {
  return concat({modelA->features(x), modelB->features(x)}, 1);
}

Tensor Ensemble::head(const Tensor& f) {
  ENGINE_CHECK(f.dim() == 2 && f.size(1) == feature_dim(), "Ensemble: features must be [N, ",
               feature_dim(), "], got ", shape_str(f.shape()));
  // Features are constants (both backbones are frozen), so the split records no gradient.
  ENGINE_CHECK(!f.requires_grad(), "Ensemble: head() takes features that need no gradient");
  std::vector<Tensor> parts = {Tensor::empty({f.size(0), 2048}, DType::F32, f.device()),
                               Tensor::empty({f.size(0), 1280}, DType::F32, f.device())};
  ENGINE_KERNEL(f.device(), concat_backward)(f, 1, parts);
  return (*fc1)(concat({modelA->head(parts[0]), modelB->head(parts[1])}, 1));
}

void Ensemble::freeze_members(bool train_heads) {
  freeze();
  fc1->unfreeze();
  if (train_heads) {
    modelA->fc->unfreeze();
    modelB->classifier->unfreeze();
  }
}

}  // namespace engine
