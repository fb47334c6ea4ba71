// What the native CUDA conv2d planner (kernels/cuda/conv2d.cu) chooses for one pass of one
// convolution: the algorithm, the GEMM tile and the split of K. The kernels run exactly this plan,
// so tests can check the choice, the benchmark can label it and ENGINE_CUDA_CONV_LOG=1 prints it.
// ENGINE_CUDA_CONV_ALGO=implicit_gemm|winograd2|winograd4|direct_small_cin forces an algorithm
// wherever it applies (elsewhere the planner's choice stands); ENGINE_CUDA_CONV_TILE and
// ENGINE_CUDA_CONV_SPLITS force the GEMM's tile and split (kernels/cuda/conv2d_gemm.cuh).
#pragma once
#include <string>

#include "engine/op_table.h"
#include "engine/tensor.h"

namespace engine::cuda {

enum class ConvAlgo { ImplicitGemm, Winograd2, Winograd4, DirectSmallCin, Depthwise };
enum class ConvPass { Forward, BackwardData, BackwardWeight };

struct ConvPlan {
  ConvAlgo algo = ConvAlgo::ImplicitGemm;
  // The GEMM's block tile and K split (for Winograd, of its batched products); 0 x 0 and 1 where
  // the algorithm runs no GEMM.
  int tile_m = 0, tile_n = 0, splits = 1;
  double model_us = 0;  // the planner's modelled time (datasheet figures, not a measurement)
};

// The plan for x [N, Cin, H, W] and w [Cout, Cin/G, kH, kW] on the current device. Needs a device
// (its SM count and the kernels' occupancy); throws on shapes the kernels do not take.
ConvPlan conv2d_plan(ConvPass pass, const Shape& x, const Shape& w, const Conv2dParams& p);

const char* conv_algo_name(ConvAlgo a);           // "implicit_gemm", "winograd2", ...
std::string conv_plan_str(const ConvPlan& plan);  // "winograd2 tile 128x64 splits 3 (12.5 us)"

}  // namespace engine::cuda
