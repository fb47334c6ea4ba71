// conv2d_winograd_f2x3 / _f4x3 on the GPU (kernels/cuda/conv2d_winograd.cu), as the conv2d
// planner (conv2d.cu) calls them. For .cu files only: it includes the GEMM core.
#pragma once
#include "kernels/cuda/conv2d_gemm.cuh"

namespace engine::cuda {

// Whether F(m x m, 3x3) takes this convolution (3x3, stride 1, dilation 1, one group; for the
// backward data pass, padding at most 2, as that pass is a convolution padded by 2 - p).
bool winograd_applies(const Shape& w, const Conv2dParams& p, bool backward_data);

// The plan of the batched products for tile size m (2 or 4), its `cycles` the modelled time of
// the whole algorithm (transforms included), infinite where one image's tiles exceed the
// products' int indices. x, w, y: the forward's shapes.
gemm::GemmPlan winograd_plan(int m, const Shape& x, const Shape& w, const Shape& y,
                             const Conv2dParams& p, bool backward_data);

void winograd_forward(int m, const gemm::GemmPlan& plan, const Tensor& x, const Tensor& w,
                      const Tensor& b, Tensor& y, const Conv2dParams& p);
void winograd_backward_data(int m, const gemm::GemmPlan& plan, const Tensor& gy, const Tensor& w,
                            Tensor& gx, const Conv2dParams& p);

}  // namespace engine::cuda
