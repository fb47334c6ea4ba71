// Structural ops: add (residual connections), concat (channel concatenation of branches) and
// flatten (CNN feature maps into a classifier). add's gradient is the upstream gradient itself,
// handed to both inputs (autograd copies before it ever adds in place into shared memory); concat's
// is the upstream gradient split back into the parts.
#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor add(const Tensor& a, const Tensor& b) {
  const char* op = "add";
  check_float(op, "first input", a);
  check_float(op, "second input", b);
  check_same_device(op, a, b);
  ENGINE_CHECK(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ",
               shape_str(b.shape()), " differ");
  Tensor y = Tensor::empty(a.shape(), DType::F32, a.device());
  ENGINE_KERNEL(a.device(), add)(a, b, y);

  if (autograd::needs_record({&a, &b})) {
    autograd::record(op, y, {&a, &b}, [](const Tensor& gy, const std::vector<bool>& needs) {
      return std::vector<Tensor>{needs[0] ? gy : Tensor(), needs[1] ? gy : Tensor()};
    });
  }
  return y;
}

namespace {
std::string shapes_str(const std::vector<Tensor>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i)
    s += (i ? ", " : "") + (xs[i].defined() ? shape_str(xs[i].shape()) : "undefined");
  return s;
}
}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  const char* op = "concat";
  ENGINE_CHECK(!xs.empty(), op, ": needs at least one tensor");
  for (const Tensor& x : xs) {
    check_float(op, "input", x);
    check_same_device(op, xs[0], x);
  }
  const Shape& first = xs[0].shape();
  const int64_t rank = xs[0].dim();
  ENGINE_CHECK(rank >= 1, op, ": inputs must have at least one dimension, got shapes ",
               shapes_str(xs));
  ENGINE_CHECK(dim >= -rank && dim < rank, op, ": dim ", dim, " out of range for rank ", rank,
               " (shapes ", shapes_str(xs), ")");
  if (dim < 0) dim += rank;
  Shape out = first;
  out[dim] = 0;
  for (const Tensor& x : xs) {
    bool match = x.dim() == rank;
    for (int64_t d = 0; match && d < rank; ++d) match = d == dim || x.shape()[d] == first[d];
    ENGINE_CHECK(match, op, ": shapes ", shapes_str(xs), " differ outside dim ", dim);
    out[dim] += x.shape()[dim];
  }
  Tensor y = Tensor::empty(out, DType::F32, xs[0].device());
  ENGINE_KERNEL(y.device(), concat_forward)(xs, dim, y);

  if (autograd::needs_record(xs)) {
    std::vector<Shape> shapes;
    for (const Tensor& x : xs) shapes.push_back(x.shape());
    autograd::record(op, y, xs, [shapes, dim](const Tensor& gy, const std::vector<bool>& needs) {
      // The kernel takes every part's extent from its tensor, so parts that want no gradient
      // get scratch memory too and are dropped after the split.
      std::vector<Tensor> g;
      for (const Shape& s : shapes) g.push_back(Tensor::empty(s, DType::F32, gy.device()));
      ENGINE_KERNEL(gy.device(), concat_backward)(gy, dim, g);
      for (size_t i = 0; i < g.size(); ++i)
        if (!needs[i]) g[i] = Tensor();
      return g;
    });
  }
  return y;
}

Tensor flatten(const Tensor& x, int64_t start_dim) {
  ENGINE_CHECK(x.defined(), "flatten: input is undefined");
  // Negative start_dim counts from the end, as in torch.flatten; Tensor::flatten checks the range.
  if (start_dim < 0 && start_dim >= -x.dim()) start_dim += x.dim();
  return x.flatten(start_dim);
}

}  // namespace engine
