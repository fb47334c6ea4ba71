// What is particular to the cuDNN/cuBLAS backend (Backend::Cudnn); its slots are compared with the
// CPU kernels by the cross-backend harness (test_cuda_backends.cpp, Cudnn/CudaSlot.*), including
// the cases it hands to the native kernels (ceil_mode pooling, non-uniform adaptive bins,
// eval-mode batch-norm backward). Here: the checked-call messages (which need no GPU: cuDNN's error
// strings and descriptor checks run on the host), TF32 off by default, and the convolution
// algorithm cache (a repeated shape adds no entry; the TF32 setting is part of the key).
// Tolerances for the cached convolution, element-wise as a fraction of max|ref|: 1e-4 as the
// harness's (cuDNN may choose FFT or Winograd, which round differently from the CPU's sums); with
// TF32 on, 1e-2 (10-bit mantissa inputs).
#include <string>

#include "tests/cuda/cuda_testing.h"

#ifdef ENGINE_HAVE_CUDNN
#include "kernels/cudnn/cudnn_util.h"
#endif

namespace engine {
namespace {

#ifdef ENGINE_HAVE_CUDNN

// cuBLAS and cuDNN are loaded at run time: where they are missing these tests skip, saying what
// was looked for where (and fail under ENGINE_REQUIRE_GPU, as on the GPU machine).
#define ENGINE_REQUIRE_CUDA_LIBRARIES()                                                  \
  do {                                                                                   \
    std::string engine_why_;                                                             \
    if (!cudnn::dyn::libraries_available(&engine_why_)) {                                \
      if (::engine::testing::gpu_required()) FAIL() << engine_why_;                     \
      GTEST_SKIP() << engine_why_;                                                       \
    }                                                                                    \
  } while (0)

// ---- run-time loading ----

// Both libraries load here (the toolkit's folder, or ENGINE_CUDA_LIBRARY_PATH), each described
// with its version and path; a function is resolved to the library's own symbol.
TEST(CudnnLibraries, LoadWithVersionAndPath) {
  ENGINE_REQUIRE_CUDA_LIBRARIES();
  const std::string d = cudnn::dyn::libraries_description();
  EXPECT_NE(d.find("cuBLAS " + std::to_string(CUBLAS_VER_MAJOR) + "."), std::string::npos) << d;
  EXPECT_NE(d.find("cuDNN " + std::to_string(CUDNN_MAJOR) + "."), std::string::npos) << d;
  EXPECT_NE(d.find("/libcudnn.so." + std::to_string(CUDNN_MAJOR)), std::string::npos) << d;
  EXPECT_EQ(cudnnGetVersion() / 10000, static_cast<size_t>(CUDNN_MAJOR));
  EXPECT_THROW(cudnn::dyn::symbol(cudnn::dyn::Lib::Cudnn, "cudnnNoSuchFunction"), Error);
}

// ---- checked-call messages (no GPU needed) ----

TEST(CudnnCheck, MessageNamesCallFileLineAndStatus) {
  ENGINE_REQUIRE_CUDA_LIBRARIES();
  cudnnTensorDescriptor_t d = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&d), CUDNN_STATUS_SUCCESS);
  const auto nchw = CUDNN_TENSOR_NCHW;
  const auto f32 = CUDNN_DATA_FLOAT;
  std::string msg;
  int line = 0;
  try {
    line = __LINE__ + 1;  // the check stays on one line, so that __LINE__ is unambiguous
    ENGINE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, nchw, f32, 1, -1, 1, 1));
  } catch (const Error& e) {
    msg = e.what();
  }
  cudnnDestroyTensorDescriptor(d);
  ASSERT_FALSE(msg.empty()) << "a negative dimension was accepted";
  EXPECT_NE(msg.find("cudnnSetTensor4dDescriptor"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos) << msg;
  EXPECT_NE(msg.find(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM)), std::string::npos) << msg;
}

TEST(CudnnCheck, CublasMessageNamesCallFileLineAndStatus) {
  ENGINE_REQUIRE_CUDA_LIBRARIES();
  auto invalid = [] { return CUBLAS_STATUS_INVALID_VALUE; };
  std::string msg;
  int line = 0;
  try {
    line = __LINE__ + 1;
    ENGINE_CUBLAS_CHECK(invalid());
  } catch (const Error& e) {
    msg = e.what();
  }
  ASSERT_FALSE(msg.empty());
  EXPECT_NE(msg.find("invalid()"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos) << msg;
  EXPECT_NE(msg.find(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)), std::string::npos) << msg;
  EXPECT_NE(msg.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << msg;
}

TEST(CudnnCheck, Tf32IsOffByDefault) { EXPECT_FALSE(cudnn_allow_tf32()); }

// ---- the convolution algorithm cache ----

// Sets the TF32 switch for a scope and restores it, even when a kernel throws.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool allow) : saved_(cudnn_allow_tf32()) { set_cudnn_allow_tf32(allow); }
  ~Tf32Scope() { set_cudnn_allow_tf32(saved_); }

 private:
  bool saved_;
};

// A shape no other test uses (and a new one on each --gtest_repeat), so that the first call is
// the one that runs Find.
TEST(Cudnn, ConvAlgorithmIsFoundOncePerShape) {
  ENGINE_REQUIRE_CUDA();
  ASSERT_FALSE(cudnn_allow_tf32());
  static int64_t run = 0;
  const Shape xs = {1, 5, 10, 6 + run++}, ws = {3, 5, 3, 3};
  const Shape ys = {1, 3, 8, xs[3] - 2};  // 3x3, stride 1, no padding
  const Conv2dParams p;
  const Tensor x = testing::fast_randn(xs, 401), w = testing::fast_randn(ws, 402, 0.f, 0.3f);
  Tensor ref = Tensor::empty(ys);
  kernel_table(Backend::Cpu).conv2d_forward(x, w, Tensor(), ref, p);
  const Tensor xd = testing::on_cuda(x), wd = testing::on_cuda(w);
  const KernelTable& dnn = kernel_table(Backend::Cudnn);

  const size_t before = conv_algo_cache_size();
  Tensor y1 = testing::poisoned_cuda(ys);
  dnn.conv2d_forward(xd, wd, Tensor(), y1, p);
  EXPECT_EQ(conv_algo_cache_size(), before + 1) << "the first call should run Find once";
  Tensor y2 = testing::poisoned_cuda(ys);
  dnn.conv2d_forward(xd, wd, Tensor(), y2, p);
  EXPECT_EQ(conv_algo_cache_size(), before + 1) << "the second call should hit the cache";
  EXPECT_MATCHES(y1, ref, (testing::Tol{0, 1e-4}));
  EXPECT_MATCHES(y2, ref, (testing::Tol{0, 1e-4}));

  // The TF32 setting is part of the key: switching it on finds (and caches) again.
  Tensor y3 = testing::poisoned_cuda(ys);
  {
    Tf32Scope tf32(true);
    dnn.conv2d_forward(xd, wd, Tensor(), y3, p);
  }
  EXPECT_EQ(conv_algo_cache_size(), before + 2);
  EXPECT_MATCHES(y3, ref, (testing::Tol{0, 1e-2}));
}

#else  // !ENGINE_HAVE_CUDNN

TEST(Cudnn, Backend) { GTEST_SKIP() << "built without cuDNN (ENGINE_HAVE_CUDNN is not set)"; }

#endif

}  // namespace
}  // namespace engine
