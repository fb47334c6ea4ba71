// CPU element-wise kernels: fill, add, y += a*x, y *= s, sum of squares. Memory-bound loops that
// the compiler vectorises; OpenMP splits them when they are large.
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

void fill(Tensor& y, float v) {
  float* p = fptr(y);
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) p[i] = v;
}

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  const float *ap = fptr(a), *bp = fptr(b);
  float* yp = fptr(y);
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) yp[i] = ap[i] + bp[i];
}

void add_inplace(Tensor& y, const Tensor& x, float alpha) {
  const float* xp = fptr(x);
  float* yp = fptr(y);
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) yp[i] += alpha * xp[i];
}

void scale_inplace(Tensor& y, float s) {
  float* yp = fptr(y);
  const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) yp[i] *= s;
}

double sum_squares(const Tensor& x) {
  const float* xp = fptr(x);
  const int64_t n = x.numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(xp[i]) * xp[i];
  return s;
}

}  // namespace

void register_elementwise(KernelTable& t) {
  t.fill = fill;
  t.add = add;
  t.add_inplace = add_inplace;
  t.scale_inplace = scale_inplace;
  t.sum_squares = sum_squares;
}

}  // namespace engine::cpu
