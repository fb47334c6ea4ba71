// Element types of tensors. Every op computes in float32 today; the other types exist so that
// labels (I64), decoded images (U8) and half-precision weights have a home, and so that bf16/fp16
// kernels can be added without changing the Tensor class.
#pragma once
#include <cstddef>
#include <cstdint>

namespace engine {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, U8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

}  // namespace engine
