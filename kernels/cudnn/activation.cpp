// cuDNN activations: cudnnActivationForward / cudnnActivationBackward with CUDNN_ACTIVATION_RELU,
// CLIPPED_RELU (coef 6: relu6), SIGMOID and TANH, NaN propagated as in PyTorch. Element-wise, so
// any tensor is described as [1, 1, 1, numel].
//
// Backward: the slot passes y and gy but not x, because all four derivatives are functions of the
// output (sigmoid: y(1 - y), tanh: 1 - y^2, relu: [y > 0], relu6: [0 < y < 6]). cuDNN's backward
// takes y, dy and x; we pass y for x too, as Caffe2's cuDNN activation gradient does:
// - sigmoid and tanh: cuDNN computes the derivative from y (what Caffe2's placeholder relies on),
//   so x is not read.
// - relu: the derivative is [x > 0], and y > 0 exactly when x > 0 (y = max(x, 0)), zero at the
//   kink as PyTorch; x <= 0 gives y = 0, where [0 > 0] is 0 as it should be.
// - relu6: the derivative is [0 < x < 6], and 0 < y < 6 exactly when 0 < x < 6 (y = clamp(x, 0,
//   6)); x <= 0 gives y = 0 and x >= 6 gives y = 6, both outside the open interval, so their
//   gradient is 0, PyTorch's value at and beyond the kinks. This holds if cuDNN's test is the open
//   interval (0, coef); the tests check it on outputs that contain exact 0s and 6s.
//
// Memory-bound: for a [32, 64, 112, 112] activation (25.7M floats) forward moves 205 MB, backward
// 308 MB: 43 / 64 us at the H200's 4.8 TB/s. Fraction of the ceiling reached: not yet measured on
// a GPU.
#include "kernels/cudnn/cudnn_util.h"

namespace engine::cudnn {
namespace {

using cuda::fptr;

const float kOne = 1.f, kZero = 0.f;

ActivationDesc activation_desc(Activation a) {
  cudnnActivationMode_t mode = CUDNN_ACTIVATION_RELU;
  double coef = 0.0;  // the ceiling, for clipped relu only
  switch (a) {
    case Activation::ReLU:
      mode = CUDNN_ACTIVATION_RELU;
      break;
    case Activation::ReLU6:
      mode = CUDNN_ACTIVATION_CLIPPED_RELU;
      coef = 6.0;
      break;
    case Activation::Sigmoid:
      mode = CUDNN_ACTIVATION_SIGMOID;
      break;
    case Activation::Tanh:
      mode = CUDNN_ACTIVATION_TANH;
      break;
  }
  ActivationDesc d;
  ENGINE_CUDNN_CHECK(cudnnSetActivationDescriptor(d, mode, CUDNN_PROPAGATE_NAN, coef));
  return d;
}

TensorDesc flat_desc(const Tensor& t) { return tensor_desc(1, 1, 1, t.numel()); }

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  if (!fits_cudnn({&x})) return ENGINE_NATIVE_KERNEL(activation_forward)(a, x, y);
  if (x.numel() == 0) return;
  const ActivationDesc ad = activation_desc(a);
  const TensorDesc d = flat_desc(x);
  ENGINE_CUDNN_CHECK(cudnnActivationForward(handle(), ad, &kOne, d, fptr(x), &kZero, d, fptr(y)));
}

void activation_backward(Activation a, const Tensor& y, const Tensor& gy, Tensor& gx) {
  if (!fits_cudnn({&y})) return ENGINE_NATIVE_KERNEL(activation_backward)(a, y, gy, gx);
  if (y.numel() == 0) return;
  const ActivationDesc ad = activation_desc(a);
  const TensorDesc d = flat_desc(y);
  // y stands in for x (see the top of the file).
  ENGINE_CUDNN_CHECK(cudnnActivationBackward(handle(), ad, &kOne, d, fptr(y), d, fptr(gy), d,
                                             fptr(y), &kZero, d, fptr(gx)));
}

}  // namespace

void register_activation(KernelTable& t) {
  t.activation_forward = activation_forward;
  t.activation_backward = activation_backward;
}

}  // namespace engine::cudnn
