// conv2d_direct: 3x3, stride-1, one-group convolutions computed directly on vectors of output
// pixels (no im2col, no GEMM), for the layers with few channels. kernels/cpu/conv2d.cpp chooses.
#pragma once
#include "engine/op_table.h"

namespace engine::cpu {

// 3x3 kernel, stride 1, dilation 1, one group, padding at most 2.
bool direct_eligible(const Shape& w, const Conv2dParams& p);
// Whether the build may use AVX-512 (16-float vectors): the direct kernel's rows and the
// per-shape choice of algorithm (kernels/cpu/conv2d.cpp) differ.
#ifdef __AVX512F__
constexpr bool kWideVectors = true;
#else
constexpr bool kWideVectors = false;
#endif
// The vector width used for output rows of ow pixels: 16 floats where the build may use AVX-512
// and the rows are wider than 8, else 8.
inline int direct_lanes(int64_t ow) { return kWideVectors && ow > 8 ? 16 : 8; }

void direct_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                    const Conv2dParams& p);
void direct_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p);
void direct_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, const Conv2dParams& p);

}  // namespace engine::cpu
