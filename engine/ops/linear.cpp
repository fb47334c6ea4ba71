// linear: y = x w^T + b, x [N, in], w [out, in]. dx = dy w, dw = dy^T x, db = sum_n dy.
#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor linear(const Tensor& x_in, const Tensor& w, const Tensor& b) {
  const char* op = "linear";
  check_float(op, "input", x_in);
  check_float(op, "weight", w);
  check_same_device(op, x_in, w);
  ENGINE_CHECK(w.dim() == 2, op, ": weight must be 2-D [out, in], got ", shape_str(w.shape()));
  ENGINE_CHECK(x_in.dim() == 1 || x_in.dim() == 2, op, ": input must be [N, in] or [in], got ",
               shape_str(x_in.shape()));
  const bool vector_in = x_in.dim() == 1;
  Tensor x = vector_in ? x_in.reshape({1, x_in.size(0)}) : x_in;
  ENGINE_CHECK(x.size(1) == w.size(1), op, ": input ", shape_str(x_in.shape()), " has ", x.size(1),
               " features but weight ", shape_str(w.shape()), " expects ", w.size(1));
  if (b.defined()) {
    check_float(op, "bias", b);
    check_same_device(op, x_in, b);
    ENGINE_CHECK(b.dim() == 1 && b.size(0) == w.size(0), op, ": bias ", shape_str(b.shape()),
                 " does not match weight ", shape_str(w.shape()));
  }
  Tensor y = Tensor::empty({x.size(0), w.size(0)}, DType::F32, x.device());
  ENGINE_KERNEL(x.device(), linear_forward)(x, w, b, y);

  if (autograd::needs_record({&x, &w, &b})) {
    Tensor xs = x.detach(), ws = w.detach();
    bool has_bias = b.defined();
    autograd::record(op, y, {&x, &w, &b},
                     [xs, ws, has_bias](const Tensor& gy, const std::vector<bool>& needs) {
                       std::vector<Tensor> g(3);
                       Device d = gy.device();
                       if (needs[0]) {
                         g[0] = Tensor::empty(xs.shape(), DType::F32, d);
                         ENGINE_KERNEL(d, linear_backward_data)(gy, ws, g[0]);
                       }
                       if (needs[1] || (has_bias && needs[2])) {
                         Tensor gw, gb;
                         if (needs[1]) gw = Tensor::empty(ws.shape(), DType::F32, d);
                         if (has_bias && needs[2])
                           gb = Tensor::empty({ws.size(0)}, DType::F32, d);
                         ENGINE_KERNEL(d, linear_backward_weight)(gy, xs, gw, gb);
                         g[1] = gw, g[2] = gb;
                       }
                       return g;
                     });
  }
  return vector_in ? y.reshape({w.size(0)}) : y;
}

}  // namespace engine
