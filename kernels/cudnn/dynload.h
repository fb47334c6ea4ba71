// cuBLAS and cuDNN are loaded at run time (dlopen), not linked: a binary of this build starts, and
// its native CUDA backend runs, on a machine where either library is missing or of another major
// version; only the cudnn backend then reports why it cannot run.
//
// How: after the libraries' own headers, every cuBLAS/cuDNN function the engine calls is
// redefined as a macro that resolves the symbol once (dlsym, cached in a static) and calls it:
//   #define cudnnCreate ENGINE_DYN(Cudnn, cudnnCreate)
// so `cudnnCreate(&h)` becomes `(<cached pointer of type decltype(&cudnnCreate)>)(&h)`. A macro
// is not expanded inside its own expansion, so the `cudnnCreate` there still names the header's
// declaration, which gives the pointer's exact type; nothing references the library's symbol at
// link time. A function missing from the list below fails to link (undefined reference), so the
// list cannot fall behind the code.
//
// Where the libraries are looked for: the folders of ENGINE_CUDA_LIBRARY_PATH (colon-separated)
// alone when it is set (tools/gpu_check.sh sets it to where it found them); else the dynamic
// loader's own search (LD_LIBRARY_PATH, the executable's RUNPATH, ld.so.cache, /lib, /usr/lib),
// then the CUDA toolkit's library folder this build was configured with. The major versions are those of the
// headers this build was compiled against (the sonames libcublas.so.13, libcudnn.so.9); the loaded
// library's reported version must have the same major.
#pragma once
#include <cublas_v2.h>
#include <cudnn.h>

#include <string>

namespace engine::cudnn::dyn {

enum class Lib { Cublas, Cudnn };

// The address of `name` in lib, loading lib first; throws engine::Error with the reason the
// library did not load (what was looked for, where, and what the loader said) or that the symbol
// is missing from it.
void* symbol(Lib lib, const char* name);

// Loads both libraries (once). False when either does not load, with why (one line per library).
bool libraries_available(std::string* why = nullptr);

// One line per library: "cuBLAS 13.0.2 from /usr/local/cuda/lib64/libcublas.so.13" or
// "cuDNN: not loaded: <reason>". Loads them if not yet tried.
std::string libraries_description();

}  // namespace engine::cudnn::dyn

// The cached function pointer of `declared`, of the header's exact type.
#define ENGINE_DYN(lib, declared)                                                      \
  ([]() {                                                                              \
    static const auto engine_dyn_fn_ = reinterpret_cast<decltype(&declared)>(          \
        ::engine::cudnn::dyn::symbol(::engine::cudnn::dyn::Lib::lib, #declared));     \
    return engine_dyn_fn_;                                                             \
  }())

// cuBLAS (cublas_v2.h maps these names to their _v2 symbols; the symbols are what is resolved).
#undef cublasCreate
#define cublasCreate ENGINE_DYN(Cublas, cublasCreate_v2)
#undef cublasSetStream
#define cublasSetStream ENGINE_DYN(Cublas, cublasSetStream_v2)
#undef cublasSgemm_64
#define cublasSgemm_64 ENGINE_DYN(Cublas, cublasSgemm_v2_64)
#undef cublasSgemv_64
#define cublasSgemv_64 ENGINE_DYN(Cublas, cublasSgemv_v2_64)
#undef cublasSger_64
#define cublasSger_64 ENGINE_DYN(Cublas, cublasSger_v2_64)
#define cublasSetMathMode ENGINE_DYN(Cublas, cublasSetMathMode)
#define cublasGetStatusString ENGINE_DYN(Cublas, cublasGetStatusString)
#define cublasGetStatusName ENGINE_DYN(Cublas, cublasGetStatusName)
#define cublasGetProperty ENGINE_DYN(Cublas, cublasGetProperty)

// cuDNN.
#define cudnnGetVersion ENGINE_DYN(Cudnn, cudnnGetVersion)
#define cudnnGetErrorString ENGINE_DYN(Cudnn, cudnnGetErrorString)
#define cudnnGetLastErrorString ENGINE_DYN(Cudnn, cudnnGetLastErrorString)
#define cudnnCreate ENGINE_DYN(Cudnn, cudnnCreate)
#define cudnnSetStream ENGINE_DYN(Cudnn, cudnnSetStream)
#define cudnnCreateTensorDescriptor ENGINE_DYN(Cudnn, cudnnCreateTensorDescriptor)
#define cudnnDestroyTensorDescriptor ENGINE_DYN(Cudnn, cudnnDestroyTensorDescriptor)
#define cudnnSetTensor4dDescriptor ENGINE_DYN(Cudnn, cudnnSetTensor4dDescriptor)
#define cudnnCreateFilterDescriptor ENGINE_DYN(Cudnn, cudnnCreateFilterDescriptor)
#define cudnnDestroyFilterDescriptor ENGINE_DYN(Cudnn, cudnnDestroyFilterDescriptor)
#define cudnnSetFilter4dDescriptor ENGINE_DYN(Cudnn, cudnnSetFilter4dDescriptor)
#define cudnnCreateConvolutionDescriptor ENGINE_DYN(Cudnn, cudnnCreateConvolutionDescriptor)
#define cudnnDestroyConvolutionDescriptor ENGINE_DYN(Cudnn, cudnnDestroyConvolutionDescriptor)
#define cudnnSetConvolution2dDescriptor ENGINE_DYN(Cudnn, cudnnSetConvolution2dDescriptor)
#define cudnnSetConvolutionGroupCount ENGINE_DYN(Cudnn, cudnnSetConvolutionGroupCount)
#define cudnnSetConvolutionMathType ENGINE_DYN(Cudnn, cudnnSetConvolutionMathType)
#define cudnnCreatePoolingDescriptor ENGINE_DYN(Cudnn, cudnnCreatePoolingDescriptor)
#define cudnnDestroyPoolingDescriptor ENGINE_DYN(Cudnn, cudnnDestroyPoolingDescriptor)
#define cudnnSetPooling2dDescriptor ENGINE_DYN(Cudnn, cudnnSetPooling2dDescriptor)
#define cudnnCreateActivationDescriptor ENGINE_DYN(Cudnn, cudnnCreateActivationDescriptor)
#define cudnnDestroyActivationDescriptor ENGINE_DYN(Cudnn, cudnnDestroyActivationDescriptor)
#define cudnnSetActivationDescriptor ENGINE_DYN(Cudnn, cudnnSetActivationDescriptor)
#define cudnnGetConvolutionForwardAlgorithmMaxCount \
  ENGINE_DYN(Cudnn, cudnnGetConvolutionForwardAlgorithmMaxCount)
#define cudnnGetConvolutionBackwardDataAlgorithmMaxCount \
  ENGINE_DYN(Cudnn, cudnnGetConvolutionBackwardDataAlgorithmMaxCount)
#define cudnnGetConvolutionBackwardFilterAlgorithmMaxCount \
  ENGINE_DYN(Cudnn, cudnnGetConvolutionBackwardFilterAlgorithmMaxCount)
#define cudnnGetConvolutionForwardWorkspaceSize \
  ENGINE_DYN(Cudnn, cudnnGetConvolutionForwardWorkspaceSize)
#define cudnnGetConvolutionBackwardDataWorkspaceSize \
  ENGINE_DYN(Cudnn, cudnnGetConvolutionBackwardDataWorkspaceSize)
#define cudnnGetConvolutionBackwardFilterWorkspaceSize \
  ENGINE_DYN(Cudnn, cudnnGetConvolutionBackwardFilterWorkspaceSize)
#define cudnnFindConvolutionForwardAlgorithmEx \
  ENGINE_DYN(Cudnn, cudnnFindConvolutionForwardAlgorithmEx)
#define cudnnFindConvolutionBackwardDataAlgorithmEx \
  ENGINE_DYN(Cudnn, cudnnFindConvolutionBackwardDataAlgorithmEx)
#define cudnnFindConvolutionBackwardFilterAlgorithmEx \
  ENGINE_DYN(Cudnn, cudnnFindConvolutionBackwardFilterAlgorithmEx)
#define cudnnConvolutionForward ENGINE_DYN(Cudnn, cudnnConvolutionForward)
#define cudnnConvolutionBiasActivationForward \
  ENGINE_DYN(Cudnn, cudnnConvolutionBiasActivationForward)
#define cudnnConvolutionBackwardData ENGINE_DYN(Cudnn, cudnnConvolutionBackwardData)
#define cudnnConvolutionBackwardFilter ENGINE_DYN(Cudnn, cudnnConvolutionBackwardFilter)
#define cudnnConvolutionBackwardBias ENGINE_DYN(Cudnn, cudnnConvolutionBackwardBias)
#define cudnnAddTensor ENGINE_DYN(Cudnn, cudnnAddTensor)
#define cudnnPoolingForward ENGINE_DYN(Cudnn, cudnnPoolingForward)
#define cudnnPoolingBackward ENGINE_DYN(Cudnn, cudnnPoolingBackward)
#define cudnnActivationForward ENGINE_DYN(Cudnn, cudnnActivationForward)
#define cudnnActivationBackward ENGINE_DYN(Cudnn, cudnnActivationBackward)
#define cudnnBatchNormalizationForwardTraining \
  ENGINE_DYN(Cudnn, cudnnBatchNormalizationForwardTraining)
#define cudnnBatchNormalizationForwardInference \
  ENGINE_DYN(Cudnn, cudnnBatchNormalizationForwardInference)
#define cudnnBatchNormalizationBackward ENGINE_DYN(Cudnn, cudnnBatchNormalizationBackward)
