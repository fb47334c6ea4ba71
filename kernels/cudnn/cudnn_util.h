// Shared by the cuDNN/cuBLAS backend (Backend::Cudnn): checked-call macros, the process's cuDNN
// and cuBLAS handles (bound to cuda::stream(), so this backend's work is ordered with the native
// kernels and copies), RAII descriptors, the TF32 switch and the register_* functions. The cudnn
// table starts as a copy of the native one (kernels/registry.cpp), and these overwrite the slots
// that cuDNN or cuBLAS implement, so ops cuDNN has no kernel for (dropout, concat, losses,
// optimizer updates) run our native kernels under either backend.
//
// Only the legacy (v7/v8-style) descriptor API is used; cuDNN 9 still ships it, marked deprecated
// (the attribute is only active with CUDNN_WARN_DEPRECATED, which we do not define). Tensors are
// described as 4-D NCHW float32 with int dimensions, so a kernel whose tensors do not fit in int
// falls back to the native kernel (fits_cudnn below).
#pragma once
#include <cublas_v2.h>
#include <cudnn.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include "engine/op_table.h"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cudnn/dynload.h"  // after cudnn.h/cublas_v2.h: the calls go through dlopen

namespace engine::cudnn {

// Throw engine::Error "cuDNN call <call> failed at <file>:<line>: <status> (<detail>)"; cuDNN's
// detail is cudnnGetLastErrorString, cuBLAS's the status name.
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file,
                                    int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);

}  // namespace engine::cudnn

#define ENGINE_CUDNN_CHECK(call)                                                           \
  do {                                                                                     \
    const cudnnStatus_t engine_cudnn_status_ = (call);                                     \
    if (engine_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                      \
      ::engine::cudnn::throw_cudnn_error(engine_cudnn_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define ENGINE_CUBLAS_CHECK(call)                                                            \
  do {                                                                                       \
    const cublasStatus_t engine_cublas_status_ = (call);                                     \
    if (engine_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                      \
      ::engine::cudnn::throw_cublas_error(engine_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)

namespace engine {

// TF32 tensor-core math for this backend's convolutions and linear layers (PyTorch's
// torch.backends.cudnn.allow_tf32 and cuda.matmul.allow_tf32 in one switch). Off by default:
// TF32 rounds the inputs to a 10-bit mantissa, about 1e-3 relative, which the FP32 parity tests
// would not tolerate. Convolution algorithms are chosen per setting (it is part of the cache key).
void set_cudnn_allow_tf32(bool allow);
bool cudnn_allow_tf32();

// Number of (shape, parameters, direction, tf32) entries in the convolution algorithm cache:
// each is one cudnnFind*AlgorithmEx run. Tests check that a repeated shape adds none.
size_t conv_algo_cache_size();

}  // namespace engine

namespace engine::cudnn {

// Created on first use and never destroyed (as cuda::stream()). One handle each per process:
// like the stream, they assume kernels are called from one host thread at a time.
cudnnHandle_t handle();
cublasHandle_t blas_handle();  // math mode set per call from cudnn_allow_tf32()

// At least n floats of 1 (or 0) on the device, for bias broadcasts and missing batch-norm
// scale/shift. Grown on demand, never freed, so a returned pointer stays valid.
const float* ones(int64_t n);
const float* zeros(int64_t n);

// Upper bound on the workspace a convolution algorithm may use, and so on what Find tries.
constexpr size_t kMaxWorkspaceBytes = size_t{256} << 20;

// Whether each tensor's element count (and so each dimension) fits cuDNN's int descriptors.
inline bool fits_cudnn(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined() && t->numel() > INT_MAX) return false;
  return true;
}

// The native backend's table, for the cases this backend hands back (ceil_mode pooling,
// non-uniform adaptive bins, eval-mode batch-norm backward, tensors too large for int).
const KernelTable& native();

// The native kernel in `slot`; throws naming the slot if the native backend has none.
template <typename Fn>
Fn native_kernel(Fn KernelTable::*slot, const char* name) {
  Fn fn = native().*slot;
  ENGINE_CHECK(fn != nullptr, name,
               ": the cudnn backend hands this case to the native backend, which has no kernel");
  return fn;
}
#define ENGINE_NATIVE_KERNEL(slot) \
  (::engine::cudnn::native_kernel(&::engine::KernelTable::slot, #slot))

// ---- RAII descriptors ----

// Owns one cuDNN descriptor: created in the constructor, destroyed in the destructor, movable.
// Ops names the descriptor kind's create and destroy calls (static functions, since the cuDNN
// functions are resolved at run time and cannot be template arguments themselves).
template <typename T, typename Ops>
class Descriptor {
 public:
  Descriptor() { ENGINE_CUDNN_CHECK(Ops::create(&d_)); }
  ~Descriptor() {
    if (d_) Ops::destroy(d_);  // cannot fail for a descriptor we created; never throw here
  }
  Descriptor(Descriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Descriptor& operator=(Descriptor&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  operator T() const { return d_; }  // pass straight to cuDNN calls

 private:
  T d_ = nullptr;
};

#define ENGINE_CUDNN_DESCRIPTOR(Name, T, create_fn, destroy_fn)              \
  struct Name##Ops {                                                         \
    static cudnnStatus_t create(T* d) { return create_fn(d); }               \
    static cudnnStatus_t destroy(T d) { return destroy_fn(d); }              \
  };                                                                         \
  using Name = Descriptor<T, Name##Ops>;
ENGINE_CUDNN_DESCRIPTOR(TensorDesc, cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                        cudnnDestroyTensorDescriptor)
ENGINE_CUDNN_DESCRIPTOR(FilterDesc, cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                        cudnnDestroyFilterDescriptor)
ENGINE_CUDNN_DESCRIPTOR(ConvDesc, cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                        cudnnDestroyConvolutionDescriptor)
ENGINE_CUDNN_DESCRIPTOR(PoolDesc, cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor,
                        cudnnDestroyPoolingDescriptor)
ENGINE_CUDNN_DESCRIPTOR(ActivationDesc, cudnnActivationDescriptor_t,
                        cudnnCreateActivationDescriptor, cudnnDestroyActivationDescriptor)
#undef ENGINE_CUDNN_DESCRIPTOR

// A packed NCHW float32 tensor [n, c, h, w].
TensorDesc tensor_desc(int64_t n, int64_t c, int64_t h, int64_t w);
// The descriptor of a 4-D tensor (throws for any other rank).
TensorDesc tensor_desc(const Tensor& t);
// A filter [k, c, h, w] (output channels, input channels per group, kernel height, width).
FilterDesc filter_desc(const Tensor& w);

// Kernel registration: register_<family>, defined in kernels/cudnn/<family>.cpp, for each family
// engine/op_list.h marks cuDNN or cuBLAS in its cudnn column.
#define ENGINE_FAMILY(family, native_col, cudnn_col) \
  ENGINE_IF_OWN_##cudnn_col(void register_##family(KernelTable& t);)
#include "engine/op_list.h"

}  // namespace engine::cudnn
