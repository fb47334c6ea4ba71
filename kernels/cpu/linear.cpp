// CPU linear layer: three SGEMMs (OpenBLAS). y = x w^T + b; dx = dy w; dw = dy^T x; db = sum dy.
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  float* yp = fptr(y);
  const float* bp = fptr(b);
  float beta = 0.f;
  if (bp) {  // start from the bias broadcast over rows, then accumulate the product
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) yp[r * out + o] = bp[o];
    beta = 1.f;
  }
  sgemm(false, true, n, out, in, fptr(x), in, fptr(w), in, beta, yp, out);
}

void linear_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx) {
  const int64_t n = gy.size(0), out = w.size(0), in = w.size(1);
  sgemm(false, false, n, in, out, fptr(gy), out, fptr(w), in, 0.f, fptr(gx), in);
}

void linear_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb) {
  const int64_t n = gy.size(0), out = gy.size(1), in = x.size(1);
  if (gw.defined()) sgemm(true, false, out, in, n, fptr(gy), out, fptr(x), in, 0.f, fptr(gw), in);
  if (gb.defined()) {
    const float* g = fptr(gy);
    float* gbp = fptr(gb);
    for (int64_t o = 0; o < out; ++o) gbp[o] = 0.f;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) gbp[o] += g[r * out + o];
  }
}

}  // namespace

void register_linear(KernelTable& t) {
  t.linear_forward = linear_forward;
  t.linear_backward_data = linear_backward_data;
  t.linear_backward_weight = linear_backward_weight;
}

}  // namespace engine::cpu
