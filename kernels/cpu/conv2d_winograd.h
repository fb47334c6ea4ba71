// conv2d_winograd_f2x3 / _f4x3: 3x3, stride-1 convolutions by Winograd's minimal filtering
// F(2x2, 3x3) or F(4x4, 3x3) (Lavin & Gray 2016). kernels/cpu/conv2d.cpp chooses per layer.
#pragma once
#include "engine/op_table.h"

namespace engine::cpu {

// The CPU conv2d algorithm: Auto picks per layer; the others force it wherever it applies.
enum class ConvAlgorithm { Auto, Im2col, Winograd2, Winograd4, Direct };
void set_conv_algorithm(ConvAlgorithm a);  // defined in kernels/cpu/conv2d.cpp

// 3x3 kernel, stride 1, dilation 1, one group.
bool winograd_eligible(const Shape& w, const Conv2dParams& p);

// Forgets the transformed output gradient that winograd_backward_data keeps for the
// winograd_backward_weight that follows it on the same gy; every other conv call runs this first.
void winograd_forget();

// Tests: forces the images per chunk and the output channels per block of transformed weights
// (each 0 = chosen from the memory budgets, the default), so that small shapes take the paths of
// large ones (several chunks, several blocks).
struct WinogradLimits {
  int64_t chunk_images = 0, cout_block = 0;
};
void set_winograd_limits(WinogradLimits l);

// `tile` is M of F(MxM, 3x3): 2 or 4.
void winograd_forward(int tile, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y,
                      const Conv2dParams& p);
void winograd_backward_data(int tile, const Tensor& gy, const Tensor& w, Tensor& gx,
                            const Conv2dParams& p);
void winograd_backward_weight(int tile, const Tensor& gy, const Tensor& x, Tensor& gw,
                              const Conv2dParams& p);

}  // namespace engine::cpu
