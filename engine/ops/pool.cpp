// Pooling ops over x [N, C, H, W] with PyTorch's semantics.
// max_pool2d: y = max over the window (padding counts as -inf); the kernel saves the flat h*W+w
//   index of each maximum (first in scan order), and backward scatters dy to those positions.
// avg_pool2d: y = sum over the window / divisor (the padded window area with
//   count_include_pad, else the real elements in it); backward spreads dy / divisor back.
// adaptive_avg_pool2d: output bin i averages rows [floor(i*H/oh), ceil((i+1)*H/oh)), likewise
//   for columns; backward spreads dy / bin area.
#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {
namespace {

void check_pool_input(const char* op, const Tensor& x) {
  check_float(op, "input", x);
  ENGINE_CHECK(x.dim() == 4, op, ": input must be 4-D [N, C, H, W], got ", shape_str(x.shape()));
  ENGINE_CHECK(x.size(1) > 0 && x.size(2) > 0 && x.size(3) > 0, op,
               ": input must have non-empty C, H and W, got ", shape_str(x.shape()));
}

// Output shape of a pooling window; checks the window as PyTorch does (positive kernel and
// stride, 0 <= padding <= kernel / 2, so that every window covers at least one element).
Shape pool_out_shape(const char* op, const Tensor& x, const Pool2dParams& p) {
  check_pool_input(op, x);
  ENGINE_CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0, op,
               ": kernel and stride must be positive, got kernel (", p.kernel_h, ", ", p.kernel_w,
               ") and stride (", p.stride_h, ", ", p.stride_w, ") for input ",
               shape_str(x.shape()));
  ENGINE_CHECK(
      p.pad_h >= 0 && p.pad_w >= 0 && p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op,
      ": padding (", p.pad_h, ", ", p.pad_w, ") must be non-negative and at most half the kernel (",
      p.kernel_h, ", ", p.kernel_w, "), input ", shape_str(x.shape()));
  const int64_t oh =
      conv_out_size(op, x.size(2), p.kernel_h, p.stride_h, p.pad_h, 1, p.ceil_mode, x.shape());
  const int64_t ow =
      conv_out_size(op, x.size(3), p.kernel_w, p.stride_w, p.pad_w, 1, p.ceil_mode, x.shape());
  return {x.size(0), x.size(1), oh, ow};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  const char* op = "max_pool2d";
  const Shape out = pool_out_shape(op, x, p);
  Tensor y = Tensor::empty(out, DType::F32, x.device());
  Tensor indices = Tensor::empty(out, DType::I64, x.device());
  ENGINE_KERNEL(x.device(), max_pool2d_forward)(x, y, indices, p);

  if (autograd::needs_record({&x})) {
    autograd::record(op, y, {&x},
                     [indices, in = x.shape(), p](const Tensor& gy, const std::vector<bool>&) {
                       Tensor gx = Tensor::empty(in, DType::F32, gy.device());
                       ENGINE_KERNEL(gy.device(), max_pool2d_backward)(gy, indices, gx, p);
                       return std::vector<Tensor>{gx};
                     });
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  const char* op = "avg_pool2d";
  Tensor y = Tensor::empty(pool_out_shape(op, x, p), DType::F32, x.device());
  ENGINE_KERNEL(x.device(), avg_pool2d_forward)(x, y, p);

  if (autograd::needs_record({&x})) {
    autograd::record(op, y, {&x}, [in = x.shape(), p](const Tensor& gy, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(in, DType::F32, gy.device());
      ENGINE_KERNEL(gy.device(), avg_pool2d_backward)(gy, gx, p);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "adaptive_avg_pool2d";
  check_pool_input(op, x);
  ENGINE_CHECK(out_h > 0 && out_w > 0, op, ": output size must be positive, got (", out_h, ", ",
               out_w, ") for input ", shape_str(x.shape()));
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, DType::F32, x.device());
  ENGINE_KERNEL(x.device(), adaptive_avg_pool2d_forward)(x, y);

  if (autograd::needs_record({&x})) {
    autograd::record(op, y, {&x}, [in = x.shape()](const Tensor& gy, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(in, DType::F32, gy.device());
      ENGINE_KERNEL(gy.device(), adaptive_avg_pool2d_backward)(gy, gx);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

}  // namespace engine
