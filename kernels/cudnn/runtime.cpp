// The runtime glue of the cuDNN/cuBLAS backend: error messages, the process's two handles (bound
// to cuda::stream()), the TF32 switch, cached constant vectors and descriptor helpers. Nothing here
// touches the device until a kernel first asks for a handle, so registering the backend on a
// machine without a GPU does nothing CUDA-visible.
//
// Workspace: every convolution allocates its workspace as a cuda::Scratch from the caching device
// allocator, so after the first step no call reaches cudaMalloc. cuBLAS keeps the workspace it
// allocates once per handle (cuBLAS's default), which is not per call either.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "engine/error.h"
#include "kernels/cudnn/cudnn_util.h"

namespace engine {
namespace {
std::atomic<bool> g_allow_tf32{false};
}  // namespace

void set_cudnn_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool cudnn_allow_tf32() { return g_allow_tf32.load(); }

}  // namespace engine

namespace engine::cudnn {

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  // cuDNN 9 keeps a per-thread message for the last failure: what was wrong, in its words.
  char last[512] = {0};
  cudnnGetLastErrorString(last, sizeof(last));
  throw Error(detail::concat("cuDNN call ", call, " failed at ", file, ":", line, ": ",
                             cudnnGetErrorString(status),
                             last[0] ? detail::concat(" (", last, ")") : std::string()));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw Error(detail::concat("cuBLAS call ", call, " failed at ", file, ":", line, ": ",
                             cublasGetStatusString(status), " (", cublasGetStatusName(status),
                             ")"));
}

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    ENGINE_CUDNN_CHECK(cudnnCreate(&created));
    ENGINE_CUDNN_CHECK(cudnnSetStream(created, cuda::stream()));
    return created;
  }();
  return h;
}

cublasHandle_t blas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    ENGINE_CUBLAS_CHECK(cublasCreate(&created));
    ENGINE_CUBLAS_CHECK(cublasSetStream(created, cuda::stream()));
    return created;
  }();
  return h;
}

namespace {

// A device vector of one constant value, grown geometrically. Outgrown buffers are kept rather
// than freed: a caller may still hold their pointer, and the sizes involved (batch sizes, channel
// counts) make the cost a few KiB.
class ConstantVector {
 public:
  explicit ConstantVector(float value) : value_(value) {}
  const float* at_least(int64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (buffers_.empty() || buffers_.back().numel() < n) {
      const int64_t size =
          std::max<int64_t>(n, buffers_.empty() ? 256 : 2 * buffers_.back().numel());
      buffers_.push_back(Tensor::full({size}, value_, Device::cuda()));  // fill runs on stream()
    }
    return buffers_.back().data<float>();
  }

 private:
  const float value_;
  std::mutex mu_;
  std::vector<Tensor> buffers_;
};

}  // namespace

// Never destroyed (as the handles): their device memory must not be returned after the CUDA
// runtime has shut down.
const float* ones(int64_t n) {
  static ConstantVector* v = new ConstantVector(1.f);
  return v->at_least(n);
}
const float* zeros(int64_t n) {
  static ConstantVector* v = new ConstantVector(0.f);
  return v->at_least(n);
}

const KernelTable& native() { return kernel_table(Backend::Native); }

TensorDesc tensor_desc(int64_t n, int64_t c, int64_t h, int64_t w) {
  TensorDesc d;
  ENGINE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                static_cast<int>(n), static_cast<int>(c),
                                                static_cast<int>(h), static_cast<int>(w)));
  return d;
}

TensorDesc tensor_desc(const Tensor& t) {
  ENGINE_CHECK(t.dim() == 4, "cudnn tensor_desc: expected a 4-D tensor, got ",
               shape_str(t.shape()));
  return tensor_desc(t.size(0), t.size(1), t.size(2), t.size(3));
}

FilterDesc filter_desc(const Tensor& w) {
  ENGINE_CHECK(w.dim() == 4, "cudnn filter_desc: expected a 4-D weight, got ",
               shape_str(w.shape()));
  FilterDesc d;
  ENGINE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
      d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, static_cast<int>(w.size(0)),
      static_cast<int>(w.size(1)), static_cast<int>(w.size(2)), static_cast<int>(w.size(3))));
  return d;
}

}  // namespace engine::cudnn
