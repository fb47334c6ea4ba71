// Argument checks shared by the ops.
#include "engine/ops.h"

namespace engine {

void check_float(const char* op, const char* what, const Tensor& t) {
  ENGINE_CHECK(t.defined(), op, ": ", what, " is undefined");
  ENGINE_CHECK(t.dtype() == DType::F32, op, ": ", what, " must be f32, got ", dtype_name(t.dtype()),
               " with shape ", shape_str(t.shape()));
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (!b.defined()) return;
  ENGINE_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device().str(),
               " and ", b.device().str(), ", shapes ", shape_str(a.shape()), " and ",
               shape_str(b.shape()), "); move them with .to() first");
}

int64_t conv_out_size(const char* op, int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                      int64_t dilation, bool ceil_mode, const Shape& x_shape) {
  ENGINE_CHECK(kernel > 0 && stride > 0 && dilation > 0 && pad >= 0, op,
               ": kernel, stride and dilation must be positive and padding non-negative (kernel ",
               kernel, ", stride ", stride, ", padding ", pad, ", dilation ", dilation, ")");
  int64_t span = dilation * (kernel - 1) + 1;
  int64_t room = in + 2 * pad - span;
  ENGINE_CHECK(room >= 0, op, ": input ", shape_str(x_shape), " is too small for kernel ", kernel,
               " with padding ", pad, " and dilation ", dilation);
  int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
  // PyTorch's rule: with ceil_mode the last window must start inside the input or left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

}  // namespace engine
