// Tensors to and from safetensors files: the engine's weight and checkpoint format. Reading
// converts F16/BF16/F64 to f32 and keeps I64/U8 as they are.
#pragma once
#include <map>
#include <string>

#include "engine/tensor.h"

namespace engine {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

TensorMap load_tensors(const std::string& path, Metadata* metadata = nullptr);
// Atomic: a crash during the write leaves any previous file at `path` intact.
void save_tensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

}  // namespace engine
