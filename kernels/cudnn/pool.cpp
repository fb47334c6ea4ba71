// cuDNN average pooling (cudnnPoolingForward / cudnnPoolingBackward) for avg_pool2d and for
// adaptive_avg_pool2d with uniform bins; the other cases run the native kernels:
// - max_pool2d: the engine's max pool saves int64 indices (the flat h*W+w of each maximum in its
//   (n, c) plane) that its backward scatters through, and the op records them for autograd.
//   cuDNN's max pooling produces no indices (its backward re-derives the argmax from x and y), so
//   both max-pool slots keep the native kernels.
// - ceil_mode, when it adds a last, partial window: cuDNN only has floor mode. When ceil_mode does
//   not change the output size the windows are the same and cuDNN runs.
// - adaptive bins that are not all the same size (H % OH or W % OW nonzero). Uniform bins are an
//   average pool with kernel = stride = H/OH (W/OW) and no padding, PyTorch's bins
//   [floor(i*H/OH), ceil((i+1)*H/OH)) being exactly [i*H/OH, (i+1)*H/OH) then.
// count_include_pad maps to CUDNN_POOLING_AVERAGE_COUNT_{INCLUDE,EXCLUDE}_PADDING: in floor mode
// no window reaches past the padding, so "include" divides by the full kernel area as PyTorch does.
//
// Backward: cudnnPoolingBackward asks for y and x as well as dy, but average pooling reads
// neither: its gradient is dy / divisor spread over each window. TensorFlow's AvgPoolGrad relies
// on this too (it passes uninitialised buffers of the right shapes, noting they "do not affect the
// results"). We pass gy for y and an uninitialised scratch buffer of gx's shape for x.
//
// Memory-bound: 2x2/2 on [32, 64, 112, 112] reads 103 MB and writes 26 MB (forward; backward the
// reverse), 27 us at the H200's 4.8 TB/s. Fraction of the ceiling reached: not yet measured on a
// GPU.
#include "kernels/cudnn/cudnn_util.h"

namespace engine::cudnn {
namespace {

using cuda::fptr;

const float kOne = 1.f, kZero = 0.f;

PoolDesc pool_desc(cudnnPoolingMode_t mode, int64_t kh, int64_t kw, int64_t ph, int64_t pw,
                   int64_t sh, int64_t sw) {
  PoolDesc d;
  ENGINE_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
      d, mode, CUDNN_PROPAGATE_NAN, static_cast<int>(kh), static_cast<int>(kw),
      static_cast<int>(ph), static_cast<int>(pw), static_cast<int>(sh), static_cast<int>(sw)));
  return d;
}

PoolDesc avg_desc(const Pool2dParams& p) {
  return pool_desc(p.count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                       : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
                   p.kernel_h, p.kernel_w, p.pad_h, p.pad_w, p.stride_h, p.stride_w);
}

// Whether the output size is cuDNN's (floor mode): false exactly when ceil_mode added a window.
bool floor_mode_size(const Shape& in, const Shape& out, const Pool2dParams& p) {
  auto floor_out = [](int64_t n, int64_t k, int64_t s, int64_t pad) {
    return (n + 2 * pad - k) / s + 1;
  };
  return floor_out(in[2], p.kernel_h, p.stride_h, p.pad_h) == out[2] &&
         floor_out(in[3], p.kernel_w, p.stride_w, p.pad_w) == out[3];
}

bool uniform_bins(const Shape& in, const Shape& out) {
  return in[2] % out[2] == 0 && in[3] % out[3] == 0;
}

PoolDesc adaptive_desc(const Shape& in, const Shape& out) {
  const int64_t kh = in[2] / out[2], kw = in[3] / out[3];
  return pool_desc(CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, kh, kw, 0, 0, kh, kw);
}

void pool_forward(const PoolDesc& d, const Tensor& x, Tensor& y) {
  const TensorDesc xd = tensor_desc(x), yd = tensor_desc(y);
  ENGINE_CUDNN_CHECK(cudnnPoolingForward(handle(), d, &kOne, xd, fptr(x), &kZero, yd, fptr(y)));
}

// Average pooling only: y and x are not read (see the top of the file).
void avg_pool_backward(const PoolDesc& d, const Tensor& gy, Tensor& gx) {
  const TensorDesc gyd = tensor_desc(gy), gxd = tensor_desc(gx);
  const cuda::Scratch unread_x(gx.nbytes());
  ENGINE_CUDNN_CHECK(cudnnPoolingBackward(handle(), d, &kOne, gyd, fptr(gy), gyd, fptr(gy), gxd,
                                          unread_x.as<void>(), &kZero, gxd, fptr(gx)));
}

void avg_pool2d_forward(const Tensor& x, Tensor& y, const Pool2dParams& p) {
  if (!fits_cudnn({&x, &y}) || !floor_mode_size(x.shape(), y.shape(), p))
    return ENGINE_NATIVE_KERNEL(avg_pool2d_forward)(x, y, p);
  if (y.numel() == 0) return;
  pool_forward(avg_desc(p), x, y);
}

void avg_pool2d_backward(const Tensor& gy, Tensor& gx, const Pool2dParams& p) {
  if (!fits_cudnn({&gy, &gx}) || !floor_mode_size(gx.shape(), gy.shape(), p))
    return ENGINE_NATIVE_KERNEL(avg_pool2d_backward)(gy, gx, p);
  if (gx.numel() == 0) return;
  avg_pool_backward(avg_desc(p), gy, gx);
}

void adaptive_avg_pool2d_forward(const Tensor& x, Tensor& y) {
  if (!fits_cudnn({&x, &y}) || !uniform_bins(x.shape(), y.shape()))
    return ENGINE_NATIVE_KERNEL(adaptive_avg_pool2d_forward)(x, y);
  if (y.numel() == 0) return;
  pool_forward(adaptive_desc(x.shape(), y.shape()), x, y);
}

void adaptive_avg_pool2d_backward(const Tensor& gy, Tensor& gx) {
  if (!fits_cudnn({&gy, &gx}) || !uniform_bins(gx.shape(), gy.shape()))
    return ENGINE_NATIVE_KERNEL(adaptive_avg_pool2d_backward)(gy, gx);
  if (gx.numel() == 0) return;
  avg_pool_backward(adaptive_desc(gx.shape(), gy.shape()), gy, gx);
}

}  // namespace

void register_pool(KernelTable& t) {
  // max_pool2d_forward / max_pool2d_backward stay native: cuDNN gives no indices (see the top).
  t.avg_pool2d_forward = avg_pool2d_forward;
  t.avg_pool2d_backward = avg_pool2d_backward;
  t.adaptive_avg_pool2d_forward = adaptive_avg_pool2d_forward;
  t.adaptive_avg_pool2d_backward = adaptive_avg_pool2d_backward;
}

}  // namespace engine::cudnn
