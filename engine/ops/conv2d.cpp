// conv2d: y[n, co, oh, ow] = act(b[co] + sum_{ci in group, kh, kw} w[co, ci, kh, kw] *
//         x[n, g*Cin/G + ci, oh*s - p + kh*d, ow*s - p + kw*d])
// act is p.activation when set (the kernel applies it in its output pass: no pass of its own over
// y), else the identity.
// Backward: with an activation, dz = act'(y) dy first (activation_backward, from the saved output,
// as the activation op does), else dz = dy. Then dx is the transposed convolution of dz with w
// (conv2d_backward_data), dw the correlation of dz with x (conv2d_backward_weight), db the sum of
// dz over n, oh, ow.
#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  const char* op = "conv2d";
  check_float(op, "input", x);
  check_float(op, "weight", w);
  check_same_device(op, x, w);
  ENGINE_CHECK(x.dim() == 4, op, ": input must be 4-D [N, C, H, W], got ", shape_str(x.shape()));
  ENGINE_CHECK(w.dim() == 4, op, ": weight must be 4-D [Cout, Cin/groups, kH, kW], got ",
               shape_str(w.shape()));
  ENGINE_CHECK(p.groups >= 1, op, ": groups must be >= 1, got ", p.groups);
  const int64_t cin = x.size(1), cout = w.size(0);
  ENGINE_CHECK(cin % p.groups == 0 && cout % p.groups == 0, op, ": groups ", p.groups,
               " must divide input channels ", cin, " and output channels ", cout);
  ENGINE_CHECK(w.size(1) == cin / p.groups, op, ": weight ", shape_str(w.shape()), " expects ",
               w.size(1) * p.groups, " input channels with groups=", p.groups, ", input ",
               shape_str(x.shape()), " has ", cin);
  if (b.defined()) {
    check_float(op, "bias", b);
    check_same_device(op, x, b);
    ENGINE_CHECK(b.dim() == 1 && b.size(0) == cout, op, ": bias ", shape_str(b.shape()),
                 " does not match ", cout, " output channels of weight ", shape_str(w.shape()));
  }
  const int64_t oh = conv_out_size(op, x.size(2), w.size(2), p.stride_h, p.pad_h, p.dilation_h,
                                   false, x.shape());
  const int64_t ow = conv_out_size(op, x.size(3), w.size(3), p.stride_w, p.pad_w, p.dilation_w,
                                   false, x.shape());
  Tensor y = Tensor::empty({x.size(0), cout, oh, ow}, DType::F32, x.device());
  ENGINE_KERNEL(x.device(), conv2d_forward)(x, w, b, y, p);

  if (autograd::needs_record({&x, &w, &b})) {
    Tensor xs = x.detach(), ws = w.detach();
    Tensor ys = p.activation ? y.detach() : Tensor();  // act' is a function of y
    bool has_bias = b.defined();
    Conv2dParams pc = p;  // the convolution's own parameters, for its backward kernels
    pc.activation.reset();
    autograd::record(op, y, {&x, &w, &b},
                     [xs, ws, ys, act = p.activation, pc, has_bias](
                         const Tensor& gy_out, const std::vector<bool>& needs) {
                       std::vector<Tensor> g(3);
                       Device d = gy_out.device();
                       Tensor gy = gy_out;
                       if (act) {
                         gy = Tensor::empty(ys.shape(), DType::F32, d);
                         ENGINE_KERNEL(d, activation_backward)(*act, ys, gy_out, gy);
                       }
                       if (needs[0]) {
                         g[0] = Tensor::empty(xs.shape(), DType::F32, d);
                         ENGINE_KERNEL(d, conv2d_backward_data)(gy, ws, g[0], pc);
                       }
                       if (needs[1] || (has_bias && needs[2])) {
                         Tensor gw, gb;
                         if (needs[1]) gw = Tensor::empty(ws.shape(), DType::F32, d);
                         if (has_bias && needs[2])
                           gb = Tensor::empty({ws.size(0)}, DType::F32, d);
                         ENGINE_KERNEL(d, conv2d_backward_weight)(gy, xs, gw, gb, pc);
                         g[1] = gw, g[2] = gb;
                       }
                       return g;
                     });
  }
  return y;
}

}  // namespace engine
