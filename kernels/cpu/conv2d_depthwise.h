// conv2d_depthwise_direct: convolutions whose output channels each read one input channel
// (groups == Cin, any channel multiplier, kernel, stride, padding and dilation), plane by plane.
// kernels/cpu/conv2d.cpp chooses it for such layers unless ENGINE_CONV_ALGO=im2col.
#pragma once
#include "engine/op_table.h"

namespace engine::cpu {

bool depthwise_eligible(const Shape& x, const Shape& w, const Conv2dParams& p);
void depthwise_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                       const Conv2dParams& p);
void depthwise_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx, const Conv2dParams& p);
// gw is overwritten; the bias gradient is the caller's (it is the same for every algorithm).
void depthwise_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw,
                               const Conv2dParams& p);

}  // namespace engine::cpu
