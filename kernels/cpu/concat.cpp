// CPU concatenation along one dimension and its inverse split. Viewed as [outer, size(dim)*inner],
// every input is one contiguous run per outer index, so both directions are memcpys of whole runs:
// 2 * 4 bytes moved per element, no arithmetic. Channel concat in NCHW (dim 1) has outer = N, so
// the runs are whole feature maps.
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

// One part of the concatenation: its run length and where its run starts inside a row of y.
struct Part {
  float* data;
  int64_t len, offset;
};

// Elements after `dim`: the stride of one step along it.
int64_t inner_size(const Shape& s, int64_t dim) {
  int64_t inner = 1;
  for (size_t i = static_cast<size_t>(dim) + 1; i < s.size(); ++i) inner *= s[i];
  return inner;
}

// `dim` is already non-negative (the op normalised it). Copies part runs to (to_y) or from the
// rows of y; the (outer, part) pairs are independent, so they are split across threads.
void copy_parts(float* y, const Shape& y_shape, int64_t dim, const std::vector<Part>& parts,
                bool to_y) {
  int64_t outer = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= y_shape[i];
  const int64_t row = y_shape[dim] * inner_size(y_shape, dim);
  const int64_t k = static_cast<int64_t>(parts.size());
  const int64_t tasks = outer * k;
#pragma omp parallel for schedule(static) if (outer * row > kParallelGrain && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / k;
    const Part& p = parts[t % k];
    if (p.len == 0) continue;
    float* yrow = y + o * row + p.offset;
    float* run = p.data + o * p.len;
    if (to_y) {
      std::memcpy(yrow, run, p.len * sizeof(float));
    } else {
      std::memcpy(run, yrow, p.len * sizeof(float));
    }
  }
}

std::vector<Part> parts_of(const std::vector<Tensor>& ts, const Shape& y_shape, int64_t dim) {
  const int64_t inner = inner_size(y_shape, dim);
  std::vector<Part> parts;
  parts.reserve(ts.size());
  int64_t offset = 0;
  for (const Tensor& t : ts) {
    const int64_t len = t.shape()[dim] * inner;
    parts.push_back({fptr(t), len, offset});
    offset += len;
  }
  return parts;
}

void concat_forward(const std::vector<Tensor>& xs, int64_t dim, Tensor& y) {
  copy_parts(fptr(y), y.shape(), dim, parts_of(xs, y.shape(), dim), true);
}

void concat_backward(const Tensor& gy, int64_t dim, std::vector<Tensor>& gxs) {
  copy_parts(fptr(gy), gy.shape(), dim, parts_of(gxs, gy.shape(), dim), false);
}

}  // namespace

void register_concat(KernelTable& t) {
  t.concat_forward = concat_forward;
  t.concat_backward = concat_backward;
}

}  // namespace engine::cpu
