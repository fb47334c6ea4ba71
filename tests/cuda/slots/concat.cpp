// The cross-backend harness's cases for the concat slots (tests/cuda/test_cuda_backends.cpp
// runs them on every CUDA backend against the CPU kernel). Tolerances, {rtol, atol} as
// EXPECT_MATCHES takes them:
// concat forward and backward exact (they copy).
#include "tests/cuda/backend_harness.h"

namespace engine::testing {
namespace {

struct ConcatCase {
  std::vector<Shape> parts;
  int64_t dim;
};

// Along dims 0, 1 (NCHW channels) and the last, 2-3 parts of different sizes, feature vectors
// side by side [N, F], and a channel concat larger than one grid's worth (1.6M elements).
const std::vector<ConcatCase>& concat_cases() {
  static const std::vector<ConcatCase> c = {
      {{{2, 3, 4}, {1, 3, 4}, {3, 3, 4}}, 0},          {{{5, 7}, {2, 7}}, 0},
      {{{2, 3, 5, 5}, {2, 1, 5, 5}, {2, 4, 5, 5}}, 1}, {{{8, 96}, {8, 161}}, 1},
      {{{3, 4, 2}, {3, 4, 5}, {3, 4, 1}}, 2},          {{{2, 3, 7, 1}, {2, 3, 7, 3}}, 3},
      {{{16, 256, 16, 16}, {16, 128, 16, 16}}, 1},
  };
  return c;
}

Shape concat_shape(const ConcatCase& c) {
  Shape out = c.parts[0];
  out[c.dim] = 0;
  for (const Shape& p : c.parts) out[c.dim] += p[c.dim];
  return out;
}

std::string label(const ConcatCase& c) {
  std::string s;
  for (const Shape& p : c.parts) s += shape_str(p) + " ";
  return s + "along dim " + std::to_string(c.dim);
}

ENGINE_SLOT_CHECK(concat_forward) {
  uint64_t seed = 10;
  for (const ConcatCase& c : concat_cases()) {
    SCOPED_TRACE(label(c));
    std::vector<Tensor> xs, xs_d;
    for (const Shape& p : c.parts) {
      xs.push_back(randn(p, ++seed));
      xs_d.push_back(on_cuda(xs.back()));
    }
    Tensor ref = Tensor::empty(concat_shape(c));
    cpu().concat_forward(xs, c.dim, ref);
    Tensor y = poisoned(concat_shape(c));
    kernel_table(b).concat_forward(xs_d, c.dim, y);
    EXPECT_MATCHES(y, ref, kExact);
  }
}

ENGINE_SLOT_CHECK(concat_backward) {
  uint64_t seed = 100;
  for (const ConcatCase& c : concat_cases()) {
    SCOPED_TRACE(label(c));
    const Tensor gy = randn(concat_shape(c), ++seed);
    std::vector<Tensor> ref, gx;
    for (const Shape& p : c.parts) {
      ref.push_back(Tensor::empty(p));
      gx.push_back(poisoned(p));
    }
    cpu().concat_backward(gy, c.dim, ref);
    kernel_table(b).concat_backward(on_cuda(gy), c.dim, gx);
    for (size_t i = 0; i < c.parts.size(); ++i) {
      SCOPED_TRACE("part " + std::to_string(i));
      EXPECT_MATCHES(gx[i], ref[i], kExact);
    }
  }
}

}  // namespace

}  // namespace engine::testing
