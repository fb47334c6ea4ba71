// Glue between engine::Tensor and the format code in engine/safetensors.h.
#include "engine/tensor_io.h"

#include <cstring>

#include "engine/safetensors.h"

namespace engine {

TensorMap load_tensors(const std::string& path, Metadata* metadata) {
  safetensors::File f = safetensors::read_file(path);
  TensorMap out;
  for (const auto& e : f.entries) {
    Tensor t;
    switch (e.dtype) {
      case safetensors::DType::F32:
      case safetensors::DType::F16:
      case safetensors::DType::BF16:
      case safetensors::DType::F64:
        t = Tensor::from_vector(e.shape, safetensors::to_float32(e));
        break;
      case safetensors::DType::I64:
      case safetensors::DType::I32:
        t = Tensor::from_vector_i64(e.shape, safetensors::to_int64(e));
        break;
      case safetensors::DType::U8:
        t = Tensor::empty(e.shape, DType::U8);
        if (!e.bytes.empty()) std::memcpy(t.raw_data(), e.bytes.data(), e.bytes.size());
        break;
      default:
        throw Error(path + ": tensor '" + e.name + "' has dtype " +
                    safetensors::dtype_name(e.dtype) + ", which the engine does not load");
    }
    out.emplace(e.name, std::move(t));
  }
  if (metadata) *metadata = f.metadata;
  return out;
}

// CPU tensors are written from their own memory (the engine is little-endian, as the format);
// others go through a host copy each. A full-width checkpoint with its optimizer state is 400 MB,
// which a copy of the whole file would add to the training run's peak.
void save_tensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  safetensors::File f;
  f.metadata = metadata;
  std::vector<std::span<const uint8_t>> views;
  for (const auto& [name, t] : tensors) {
    safetensors::Entry e;
    e.name = name;
    e.shape = t.shape();
    switch (t.dtype()) {
      case DType::F32:
        e.dtype = safetensors::DType::F32;
        break;
      case DType::I64:
        e.dtype = safetensors::DType::I64;
        break;
      case DType::U8:
        e.dtype = safetensors::DType::U8;
        break;
      default:
        throw Error(path + ": cannot save tensor '" + name + "' of dtype " + dtype_name(t.dtype()));
    }
    if (t.device().is_cpu()) {
      views.emplace_back(static_cast<const uint8_t*>(t.raw_data()), t.nbytes());
    } else {
      e.bytes.resize(t.nbytes());
      copy_bytes(e.bytes.data(), Device::cpu(), t.raw_data(), t.device(), t.nbytes());
      views.emplace_back(e.bytes);  // the vector's buffer stays put when e moves into f
    }
    f.entries.push_back(std::move(e));
  }
  safetensors::write_file(path, f, views);
}

}  // namespace engine
