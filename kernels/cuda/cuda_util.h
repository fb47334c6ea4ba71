// Shared by the native CUDA backend: the checked-call macro, the process-wide stream, the caching
// device allocator, launch-size helpers and the register_* functions that kernels/registry.cpp
// calls. One device (the current one, device 0 unless the caller switched) and one stream per
// process: every kernel, copy and memset is queued on stream(), so work stays in order and a freed
// block can be handed out again at once.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/op_table.h"
#include "engine/storage.h"
#include "engine/tensor.h"

namespace engine::cuda {

// Throws engine::Error "<call> failed at <file>:<line>: <cuda error string> (<error name>)".
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

}  // namespace engine::cuda

// ENGINE_CUDA_CHECK(cudaMemcpyAsync(...)); after a kernel launch,
// ENGINE_CUDA_CHECK(cudaGetLastError()) reports a bad launch configuration.
#define ENGINE_CUDA_CHECK(call)                                                      \
  do {                                                                               \
    const cudaError_t engine_cuda_err_ = (call);                                     \
    if (engine_cuda_err_ != cudaSuccess)                                             \
      ::engine::cuda::throw_cuda_error(engine_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

namespace engine::cuda {

// Whether a CUDA device can be used. Never throws: with no device, no driver or a driver too old
// for this runtime it returns false and, when why is given, the reason ("cudaGetDeviceCount:
// no CUDA-capable device is detected (cudaErrorNoDevice)"). The answer is computed once.
bool cuda_available(std::string* why = nullptr);

// The stream every native-backend operation runs on (created on first use).
cudaStream_t stream();

// Caching allocator: freed blocks go to a free list per size class and are handed out again, so
// a training step allocates nothing from the driver once the first step has run. Size classes:
// multiples of 512 bytes up to 1 MiB, multiples of 2 MiB above (waste at most 512 B or 2 MiB per
// block, against the 2x of power-of-two classes). When cudaMalloc runs out of memory the cache is
// released and the allocation retried once; then an Error says out of memory, with the bytes
// asked and cudaMemGetInfo's free/total. Thread-safe.
class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  // Peak of the bytes held from the driver (in use + cached): the GPU memory the process needs.
  size_t peak_bytes() const override;
  size_t reserved_bytes() const;      // held from the driver now
  size_t cached_bytes() const;        // of which free, waiting in the cache
  size_t driver_allocations() const;  // cudaMalloc calls that succeeded, ever
  void release_cache();               // cudaFree every cached block
  static size_t size_class(size_t bytes);

 private:
  void release_cache_locked();
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  size_t reserved_ = 0, cached_ = 0, peak_ = 0, mallocs_ = 0;
};

// The process's device allocator (the one registered for DeviceType::CUDA).
CachingAllocator& device_allocator();

// Registers the allocator, copy and memset with engine/storage.h when cuda_available(); does
// nothing otherwise, so a CUDA build on a machine without a GPU runs the CPU engine unchanged.
void register_runtime();

// Kernel registration (native backend): register_<family>, defined in kernels/cuda/<family>.cu,
// for each family engine/op_list.h marks `kernel` in its native column.
#define ENGINE_FAMILY(family, native_col, cudnn_col) \
  ENGINE_IF_OWN_##native_col(void register_##family(KernelTable& t);)
#include "engine/op_list.h"

// Launch geometry for grid-stride loops: 256 threads, at most kMaxBlocks blocks (8 per SM on a
// 132-SM H200 with room to spare; the loop covers the rest).
constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 4096;
inline unsigned grid_for(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(b < kMaxBlocks ? b : kMaxBlocks);
}

inline float* fptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// The activations on the device, shared by the activation kernels (activation.cu) and conv2d's
// epilogue (conv2d.cu), so both compute the same float. Comparisons are written so that NaN
// propagates, as in PyTorch (x < 0 is false for NaN).
template <Activation A>
__device__ __forceinline__ float act_forward(float v) {
  if constexpr (A == Activation::ReLU) {
    return v < 0.f ? 0.f : v;
  } else if constexpr (A == Activation::ReLU6) {
    return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
  } else if constexpr (A == Activation::Sigmoid) {
    return 1.f / (1.f + expf(-v));  // expf(-v) = inf below v = -88.7 gives exactly 0, the limit
  } else {
    return tanhf(v);
  }
}

// The derivative from the output y = v; at a kink it is PyTorch's: zero at relu's 0 and at
// relu6's 0 and 6.
template <Activation A>
__device__ __forceinline__ float act_backward(float v, float g) {
  if constexpr (A == Activation::ReLU) {
    return v > 0.f ? g : 0.f;
  } else if constexpr (A == Activation::ReLU6) {
    return v > 0.f && v < 6.f ? g : 0.f;
  } else if constexpr (A == Activation::Sigmoid) {
    return g * v * (1.f - v);
  } else {
    return g * (1.f - v * v);
  }
}

// Device scratch from the caching allocator, returned on scope exit.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : bytes_(bytes), p_(device_allocator().allocate(bytes)) {}
  ~Scratch() { device_allocator().deallocate(p_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  size_t bytes_;
  void* p_;
};

}  // namespace engine::cuda
