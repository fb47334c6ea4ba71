// The cuDNN/cuBLAS backend (Backend::Cudnn) against the CPU kernels, slot by slot, on fresh random
// inputs with NaN-poisoned outputs, TF32 off. Also: the convolution algorithm cache (a repeated
// shape adds no entry; the TF32 setting is part of the key), the cases handed to the native
// kernels (ceil_mode pooling, non-uniform adaptive bins, eval-mode batch-norm backward), and the
// checked-call message (which needs no GPU: cuDNN's error strings and descriptor checks run on the
// host).
// Tolerances, max|ours - ref| / max|ref|:
// - conv2d, all passes: 1e-4 (cuDNN may choose FFT or Winograd, which round differently from the
//   CPU's direct im2col sums); with TF32 on: 1e-2 (10-bit mantissa inputs).
// - linear: 1e-5 (FP32 GEMMs summing in a different order).
// - avg / adaptive pooling: 1e-6 (a handful of additions and one division).
// - batch norm forward, saved and running statistics: 1e-5 (cuDNN accumulates in float, the CPU in
//   double); backward: 1e-4.
// - activations: relu, relu6 forward 0 (exact); sigmoid, tanh forward 1e-5 (cuDNN's own exp/tanh
//   against the CPU's Cephes polynomials); every backward 2e-6 (same y fed to both, a few
//   roundings).
#include <limits>
#include <string>
#include <vector>

#include "tests/cuda/cuda_testing.h"

#ifdef ENGINE_HAVE_CUDNN
#include "kernels/cudnn/cudnn_util.h"
#endif

namespace engine {
namespace {

#ifdef ENGINE_HAVE_CUDNN

// ---- helpers ----

Tensor randn(const Shape& s, uint64_t seed, float stddev = 1.f) {
  Generator gen(seed);
  return Tensor::randn(s, gen, 0.f, stddev);
}

Tensor poisoned(const Shape& s) {
  return Tensor::from_vector(
      s, std::vector<float>(shape_numel(s), std::numeric_limits<float>::quiet_NaN()),
      Device::cuda());
}

// Values in [0.5, 1.5): running variances.
Tensor positive(const Shape& s, uint64_t seed) {
  Generator gen(seed);
  return Tensor::rand(s, gen, 0.5f, 1.5f);
}

Tensor on_cuda(const Tensor& t) { return t.defined() ? t.to(Device::cuda()) : Tensor(); }

const KernelTable& cpu() { return kernel_table(Backend::Cpu); }
const KernelTable& dnn() { return kernel_table(Backend::Cudnn); }

// PyTorch's output size (engine/ops/common.cpp's rule, repeated here so the test states it).
int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d = 1, bool ceil = false) {
  const int64_t room = in + 2 * p - d * (k - 1) - 1;
  int64_t out = (ceil ? (room + s - 1) / s : room / s) + 1;
  if (ceil && (out - 1) * s >= in + p) --out;
  return out;
}

// ---- checked-call messages (no GPU needed) ----

TEST(CudnnCheck, MessageNamesCallFileLineAndStatus) {
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

// ---- conv2d ----

struct ConvCase {
  const char* name;
  Shape x, w;  // x [N, C, H, W], w [K, C / groups, R, S]
  Conv2dParams p;
};

std::vector<ConvCase> conv_cases() {
  auto params = [](int64_t stride, int64_t pad, int64_t dilation, int64_t groups) {
    Conv2dParams p;
    p.stride_h = p.stride_w = stride;
    p.pad_h = p.pad_w = pad;
    p.dilation_h = p.dilation_w = dilation;
    p.groups = groups;
    return p;
  };
  return {
      {"batch 1, odd H/W, 3x3 pad 1", {1, 3, 7, 9}, {5, 3, 3, 3}, params(1, 1, 1, 1)},
      {"stride 2", {2, 4, 11, 10}, {6, 4, 3, 3}, params(2, 1, 1, 1)},
      {"depthwise (groups = channels)", {2, 8, 9, 9}, {8, 1, 3, 3}, params(1, 1, 1, 8)},
      {"groups 2", {3, 6, 8, 7}, {4, 3, 3, 3}, params(1, 0, 1, 2)},
      {"dilation 2", {2, 3, 13, 12}, {4, 3, 3, 3}, params(1, 2, 2, 1)},
      {"1x1", {2, 16, 5, 5}, {7, 16, 1, 1}, params(1, 0, 1, 1)},
      {"7x7 stride 2 (stem)", {2, 3, 33, 31}, {8, 3, 7, 7}, params(2, 3, 1, 1)},
      {"64 -> 64 3x3 (FFT / Winograd territory)",
       {4, 64, 16, 16},
       {64, 64, 3, 3},
       params(1, 1, 1, 1)},
  };
}

Shape conv_out_shape(const ConvCase& c) {
  return {c.x[0], c.w[0], out_size(c.x[2], c.w[2], c.p.stride_h, c.p.pad_h, c.p.dilation_h),
          out_size(c.x[3], c.w[3], c.p.stride_w, c.p.pad_w, c.p.dilation_w)};
}

TEST(Cudnn, ConvForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(std::string(c.name) + (with_bias ? ", bias" : ", no bias"));
      const Shape ys = conv_out_shape(c);
      const Tensor x = randn(c.x, ++seed), w = randn(c.w, ++seed, 0.3f);
      const Tensor b = with_bias ? randn({c.w[0]}, ++seed) : Tensor();
      Tensor ref = Tensor::empty(ys);
      cpu().conv2d_forward(x, w, b, ref, c.p);
      Tensor y = poisoned(ys);
      dnn().conv2d_forward(on_cuda(x), on_cuda(w), on_cuda(b), y, c.p);
      EXPECT_CLOSE(y, ref, 1e-4);
    }
  }
}

TEST(Cudnn, ConvBackwardDataMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 200;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor gy = randn(conv_out_shape(c), ++seed), w = randn(c.w, ++seed, 0.3f);
    Tensor ref = Tensor::empty(c.x);
    cpu().conv2d_backward_data(gy, w, ref, c.p);
    Tensor gx = poisoned(c.x);
    dnn().conv2d_backward_data(on_cuda(gy), on_cuda(w), gx, c.p);
    EXPECT_CLOSE(gx, ref, 1e-4);
  }
}

TEST(Cudnn, ConvBackwardWeightMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 300;
  for (const ConvCase& c : conv_cases()) {
    // Both gradients, only the weight's, only the bias's (gw undefined).
    for (int which : {0, 1, 2}) {
      SCOPED_TRACE(std::string(c.name) + (which == 0   ? ", gw and gb"
                                          : which == 1 ? ", gw"
                                                       : ", gb"));
      const Tensor gy = randn(conv_out_shape(c), ++seed), x = randn(c.x, ++seed);
      Tensor ref_w = Tensor::empty(c.w), ref_b = Tensor::empty({c.w[0]});
      cpu().conv2d_backward_weight(gy, x, ref_w, ref_b, c.p);
      Tensor gw = which != 2 ? poisoned(c.w) : Tensor();
      Tensor gb = which != 1 ? poisoned({c.w[0]}) : Tensor();
      dnn().conv2d_backward_weight(on_cuda(gy), on_cuda(x), gw, gb, c.p);
      if (gw.defined()) {
        EXPECT_CLOSE(gw, ref_w, 1e-4);
      }
      if (gb.defined()) {
        EXPECT_CLOSE(gb, ref_b, 1e-4);
      }
    }
  }
}

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
  const ConvCase c{"cache", {1, 5, 10, 6 + run++}, {3, 5, 3, 3}, {}};
  const Shape ys = conv_out_shape(c);
  const Tensor x = randn(c.x, 401), w = randn(c.w, 402, 0.3f);
  Tensor ref = Tensor::empty(ys);
  cpu().conv2d_forward(x, w, Tensor(), ref, c.p);
  const Tensor xd = on_cuda(x), wd = on_cuda(w);

  const size_t before = conv_algo_cache_size();
  Tensor y1 = poisoned(ys);
  dnn().conv2d_forward(xd, wd, Tensor(), y1, c.p);
  EXPECT_EQ(conv_algo_cache_size(), before + 1) << "the first call should run Find once";
  Tensor y2 = poisoned(ys);
  dnn().conv2d_forward(xd, wd, Tensor(), y2, c.p);
  EXPECT_EQ(conv_algo_cache_size(), before + 1) << "the second call should hit the cache";
  EXPECT_CLOSE(y1, ref, 1e-4);
  EXPECT_CLOSE(y2, ref, 1e-4);

  // The TF32 setting is part of the key: switching it on finds (and caches) again.
  Tensor y3 = poisoned(ys);
  {
    Tf32Scope tf32(true);
    dnn().conv2d_forward(xd, wd, Tensor(), y3, c.p);
  }
  EXPECT_EQ(conv_algo_cache_size(), before + 2);
  EXPECT_CLOSE(y3, ref, 1e-2);
}

// ---- linear ----

struct LinearCase {
  int64_t n, in, out;
};
const LinearCase kLinearCases[] = {{1, 7, 3}, {5, 33, 17}, {64, 300, 129}};

TEST(Cudnn, LinearForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 500;
  for (const LinearCase& c : kLinearCases) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE("n " + std::to_string(c.n) + ", in " + std::to_string(c.in) + ", out " +
                   std::to_string(c.out) + (with_bias ? ", bias" : ", no bias"));
      const Tensor x = randn({c.n, c.in}, ++seed), w = randn({c.out, c.in}, ++seed, 0.1f);
      const Tensor b = with_bias ? randn({c.out}, ++seed) : Tensor();
      Tensor ref = Tensor::empty({c.n, c.out});
      cpu().linear_forward(x, w, b, ref);
      Tensor y = poisoned({c.n, c.out});
      dnn().linear_forward(on_cuda(x), on_cuda(w), on_cuda(b), y);
      EXPECT_CLOSE(y, ref, 1e-5);
    }
  }
}

TEST(Cudnn, LinearBackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 600;
  for (const LinearCase& c : kLinearCases) {
    SCOPED_TRACE("n " + std::to_string(c.n) + ", in " + std::to_string(c.in) + ", out " +
                 std::to_string(c.out));
    const Tensor gy = randn({c.n, c.out}, ++seed), w = randn({c.out, c.in}, ++seed);
    const Tensor x = randn({c.n, c.in}, ++seed);
    Tensor ref_x = Tensor::empty({c.n, c.in});
    cpu().linear_backward_data(gy, w, ref_x);
    Tensor gx = poisoned({c.n, c.in});
    dnn().linear_backward_data(on_cuda(gy), on_cuda(w), gx);
    EXPECT_CLOSE(gx, ref_x, 1e-5);

    Tensor ref_w = Tensor::empty({c.out, c.in}), ref_b = Tensor::empty({c.out});
    cpu().linear_backward_weight(gy, x, ref_w, ref_b);
    for (int which : {0, 1, 2}) {  // both, only gw, only gb
      Tensor gw = which != 2 ? poisoned({c.out, c.in}) : Tensor();
      Tensor gb = which != 1 ? poisoned({c.out}) : Tensor();
      dnn().linear_backward_weight(on_cuda(gy), on_cuda(x), gw, gb);
      if (gw.defined()) {
        EXPECT_CLOSE(gw, ref_w, 1e-5);
      }
      if (gb.defined()) {
        EXPECT_CLOSE(gb, ref_b, 1e-5);
      }
    }
  }
}

// ---- average pooling ----

struct PoolCase {
  const char* name;
  Shape x;
  Pool2dParams p;
};

Pool2dParams pool_params(int64_t k, int64_t s, int64_t pad, bool ceil, bool include_pad) {
  Pool2dParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = pad;
  p.ceil_mode = ceil;
  p.count_include_pad = include_pad;
  return p;
}

std::vector<PoolCase> pool_cases() {
  return {
      {"2x2/2", {2, 3, 8, 8}, pool_params(2, 2, 0, false, true)},
      {"3x3/2 pad 1, include pad, batch 1, odd", {1, 4, 9, 7}, pool_params(3, 2, 1, false, true)},
      {"3x3/2 pad 1, exclude pad, batch 1, odd", {1, 4, 9, 7}, pool_params(3, 2, 1, false, false)},
      {"3x3/1 pad 1, odd", {2, 5, 11, 13}, pool_params(3, 1, 1, false, false)},
      // ceil_mode that changes nothing (8 = 4 windows of 2 either way): cuDNN runs.
      {"2x2/2 ceil, same size", {1, 2, 8, 8}, pool_params(2, 2, 0, true, true)},
      // ceil_mode adding a partial window (9 -> 5, not 4): handed to the native kernel.
      {"2x2/2 ceil, extra window (native)", {1, 3, 9, 9}, pool_params(2, 2, 0, true, true)},
      {"3x3/2 pad 1 ceil, exclude pad (native)", {2, 3, 10, 8}, pool_params(3, 2, 1, true, false)},
  };
}

Shape pool_out_shape(const PoolCase& c) {
  return {c.x[0], c.x[1], out_size(c.x[2], c.p.kernel_h, c.p.stride_h, c.p.pad_h, 1, c.p.ceil_mode),
          out_size(c.x[3], c.p.kernel_w, c.p.stride_w, c.p.pad_w, 1, c.p.ceil_mode)};
}

TEST(Cudnn, AvgPoolMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 700;
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(c.name);
    const Shape ys = pool_out_shape(c);
    const Tensor x = randn(c.x, ++seed), gy = randn(ys, ++seed);
    Tensor ref = Tensor::empty(ys), ref_gx = Tensor::empty(c.x);
    cpu().avg_pool2d_forward(x, ref, c.p);
    cpu().avg_pool2d_backward(gy, ref_gx, c.p);
    Tensor y = poisoned(ys), gx = poisoned(c.x);
    dnn().avg_pool2d_forward(on_cuda(x), y, c.p);
    dnn().avg_pool2d_backward(on_cuda(gy), gx, c.p);
    EXPECT_CLOSE(y, ref, 1e-6);
    EXPECT_CLOSE(gx, ref_gx, 1e-6);
  }
}

TEST(Cudnn, AdaptiveAvgPoolMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  struct Case {
    const char* name;
    Shape x, y;
  };
  const Case cases[] = {
      {"uniform bins 4x4", {2, 3, 8, 12}, {2, 3, 2, 3}},
      {"global (7x7 -> 1x1)", {2, 5, 7, 7}, {2, 5, 1, 1}},
      {"non-uniform bins (native)", {2, 3, 7, 10}, {2, 3, 3, 4}},
      {"larger output than input (native)", {1, 2, 3, 3}, {1, 2, 5, 4}},
  };
  uint64_t seed = 800;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor x = randn(c.x, ++seed), gy = randn(c.y, ++seed);
    Tensor ref = Tensor::empty(c.y), ref_gx = Tensor::empty(c.x);
    cpu().adaptive_avg_pool2d_forward(x, ref);
    cpu().adaptive_avg_pool2d_backward(gy, ref_gx);
    Tensor y = poisoned(c.y), gx = poisoned(c.x);
    dnn().adaptive_avg_pool2d_forward(on_cuda(x), y);
    dnn().adaptive_avg_pool2d_backward(on_cuda(gy), gx);
    EXPECT_CLOSE(y, ref, 1e-6);
    EXPECT_CLOSE(gx, ref_gx, 1e-6);
  }
}

// ---- batch norm ----

const Shape kBnShapes[] = {{4, 6, 5, 7}, {1, 3, 9, 11}, {8, 5}, {3, 4, 10}};

TEST(Cudnn, BatchNormTrainForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 900;
  for (const Shape& s : kBnShapes) {
    // 0: affine with both running buffers; 1: no affine, no running buffers; 2: only running_mean.
    for (int variant : {0, 1, 2}) {
      SCOPED_TRACE(shape_str(s) + ", variant " + std::to_string(variant));
      const int64_t c = s[1];
      const Tensor x = randn(s, ++seed, 2.f);
      const Tensor w = variant == 0 ? randn({c}, ++seed) : Tensor();
      const Tensor b = variant == 0 ? randn({c}, ++seed) : Tensor();
      const Tensor rm0 = variant != 1 ? randn({c}, ++seed) : Tensor();
      const Tensor rv0 = variant == 0 ? positive({c}, ++seed) : Tensor();
      const float momentum = 0.1f, eps = 1e-5f;

      Tensor ref = Tensor::empty(s), ref_mean = Tensor::empty({c}), ref_inv = Tensor::empty({c});
      Tensor ref_rm = rm0.defined() ? rm0.clone() : Tensor();
      Tensor ref_rv = rv0.defined() ? rv0.clone() : Tensor();
      cpu().batch_norm_forward_train(x, w, b, ref, ref_mean, ref_inv, ref_rm, ref_rv, momentum,
                                     eps);

      Tensor y = poisoned(s), mean = poisoned({c}), inv = poisoned({c});
      Tensor rm = on_cuda(rm0), rv = on_cuda(rv0);
      dnn().batch_norm_forward_train(on_cuda(x), on_cuda(w), on_cuda(b), y, mean, inv, rm, rv,
                                     momentum, eps);
      EXPECT_CLOSE(y, ref, 1e-5);
      EXPECT_CLOSE(mean, ref_mean, 1e-5);
      EXPECT_CLOSE(inv, ref_inv, 1e-5);
      if (rm.defined()) {
        EXPECT_CLOSE(rm, ref_rm, 1e-5);
      }
      if (rv.defined()) {
        EXPECT_CLOSE(rv, ref_rv, 1e-5);
      }
    }
  }
}

TEST(Cudnn, BatchNormEvalForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 1000;
  // The last shape is the op's own use: invstd from a [1, C] row of ones, no affine.
  const Shape shapes[] = {{4, 6, 5, 7}, {8, 5}, {1, 7}};
  for (const Shape& s : shapes) {
    for (bool affine : {true, false}) {
      SCOPED_TRACE(shape_str(s) + (affine ? ", affine" : ", no affine"));
      const int64_t c = s[1];
      const Tensor x = randn(s, ++seed, 2.f);
      const Tensor w = affine ? randn({c}, ++seed) : Tensor(),
                   b = affine ? randn({c}, ++seed) : Tensor();
      const Tensor rm = randn({c}, ++seed), rv = positive({c}, ++seed);
      Tensor ref = Tensor::empty(s);
      cpu().batch_norm_forward_eval(x, w, b, rm, rv, ref, 1e-5f);
      Tensor y = poisoned(s);
      dnn().batch_norm_forward_eval(on_cuda(x), on_cuda(w), on_cuda(b), on_cuda(rm), on_cuda(rv), y,
                                    1e-5f);
      EXPECT_CLOSE(y, ref, 1e-5);
    }
  }
}

// training = true runs cuDNN; training = false (constant statistics) is handed to the native
// kernel.
TEST(Cudnn, BatchNormBackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  uint64_t seed = 1100;
  for (const Shape& s : kBnShapes) {
    for (bool training : {true, false}) {
      for (int which : {0, 1, 2}) {  // 0: gx, gw, gb; 1: gx only (no affine); 2: gw, gb only
        SCOPED_TRACE(shape_str(s) + (training ? ", training" : ", eval") + ", outputs " +
                     std::to_string(which));
        const int64_t c = s[1];
        const Tensor x = randn(s, ++seed, 2.f), gy = randn(s, ++seed);
        const Tensor w = which != 1 ? randn({c}, ++seed) : Tensor();
        // Statistics as the op passes them: the batch's (from the CPU forward) or running ones.
        Tensor mean = Tensor::empty({c}), invstd = Tensor::empty({c});
        if (training) {
          Tensor y = Tensor::empty(s), none;
          cpu().batch_norm_forward_train(x, w, Tensor(), y, mean, invstd, none, none, 0.1f, 1e-5f);
        } else {
          mean = randn({c}, ++seed);
          invstd = Tensor::full({c}, 0.8f);
        }
        Tensor ref_x = Tensor::empty(s), ref_w = Tensor::empty({c}), ref_b = Tensor::empty({c});
        Tensor rw = which != 1 ? ref_w : Tensor(), rb = which != 1 ? ref_b : Tensor();
        cpu().batch_norm_backward(gy, x, w, mean, invstd, training, ref_x, rw, rb);

        Tensor gx = which != 2 ? poisoned(s) : Tensor();
        Tensor gw = which != 1 ? poisoned({c}) : Tensor(),
               gb = which != 1 ? poisoned({c}) : Tensor();
        dnn().batch_norm_backward(on_cuda(gy), on_cuda(x), on_cuda(w), on_cuda(mean),
                                  on_cuda(invstd), training, gx, gw, gb);
        if (gx.defined()) {
          EXPECT_CLOSE(gx, ref_x, 1e-4);
        }
        if (gw.defined()) {
          EXPECT_CLOSE(gw, ref_w, 1e-4);
        }
        if (gb.defined()) {
          EXPECT_CLOSE(gb, ref_b, 1e-4);
        }
      }
    }
  }
}

// ---- activations ----

constexpr Activation kActivations[] = {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid,
                                       Activation::Tanh};

TEST(Cudnn, ActivationForwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (Activation a : kActivations) {
    for (int64_t n : testing::test_sizes()) {
      SCOPED_TRACE(std::string(activation_name(a)) + ", n = " + std::to_string(n));
      const Tensor x = testing::random_cpu(n, 40 + static_cast<uint64_t>(a), 4.f);
      Tensor ref = Tensor::empty({n});
      cpu().activation_forward(a, x, ref);
      Tensor y = testing::poisoned_cuda(n);
      dnn().activation_forward(a, on_cuda(x), y);
      const bool exact = a == Activation::ReLU || a == Activation::ReLU6;
      EXPECT_CLOSE(y, ref, exact ? 0.0 : 1e-5);
    }
  }
}

// y comes from the CPU forward with stddev 4, so it holds exact 0s (relu, relu6) and 6s (relu6):
// the kinks where passing y in place of x must still give PyTorch's zero gradient.
TEST(Cudnn, ActivationBackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  for (Activation a : kActivations) {
    for (int64_t n : testing::test_sizes()) {
      SCOPED_TRACE(std::string(activation_name(a)) + ", n = " + std::to_string(n));
      const Tensor x = testing::random_cpu(n, 50 + static_cast<uint64_t>(a), 4.f);
      Tensor y = Tensor::empty({n});
      cpu().activation_forward(a, x, y);
      const Tensor gy = testing::random_cpu(n, 60 + static_cast<uint64_t>(a));
      Tensor ref = Tensor::empty({n});
      cpu().activation_backward(a, y, gy, ref);
      Tensor gx = testing::poisoned_cuda(n);
      dnn().activation_backward(a, on_cuda(y), on_cuda(gy), gx);
      EXPECT_CLOSE(gx, ref, 2e-6);
    }
  }
}

#else  // !ENGINE_HAVE_CUDNN

TEST(Cudnn, Backend) { GTEST_SKIP() << "built without cuDNN (ENGINE_HAVE_CUDNN is not set)"; }

#endif

}  // namespace
}  // namespace engine
