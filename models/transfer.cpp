// Shared checks of the transfer-learning models.
#include "models/transfer.h"

namespace engine {

void TransferModel::check_input(const Tensor& x) const {
  ENGINE_CHECK(x.dim() == 4 && x.size(1) == 3, type_name(), ": expected input [N, 3, H, W], got ",
               shape_str(x.shape()));
  ENGINE_CHECK(x.size(2) >= 32 && x.size(3) >= 32, type_name(),
               ": input side must be at least 32 (the network's total stride), got ",
               shape_str(x.shape()));
}

void freeze_backbone(TransferModel& m, const std::string& from) {
  const std::vector<std::string> blocks = m.block_names();
  size_t first = blocks.size();
  if (!from.empty()) {
    for (size_t i = 0; i < blocks.size() && first == blocks.size(); ++i) {
      if (blocks[i] == from || blocks[i].rfind(from + ".", 0) == 0) first = i;
    }
    if (first == blocks.size()) {
      std::string valid;
      for (const auto& b : blocks) valid += (valid.empty() ? "" : ", ") + b;
      throw Error(m.type_name() + ": --unfreeze-from '" + from + "' names no block (valid: " +
                  valid + ")");
    }
  }
  auto starts = [](const std::string& name, const std::string& prefix) {
    return name.rfind(prefix + ".", 0) == 0;
  };
  m.freeze();
  for (auto& [name, t] : m.named_parameters()) {
    bool on = starts(name, m.head_name());
    for (size_t i = first; i < blocks.size() && !on; ++i) on = starts(name, blocks[i]);
    Tensor h = t;
    h.set_requires_grad(on);
  }
  Module::touch_state();
}

}  // namespace engine
