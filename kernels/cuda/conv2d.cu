// Native CUDA conv2d kernels: not written yet (the slots stay empty, so ops say so by name).
#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {

void register_conv2d(KernelTable&) {}

}  // namespace engine::cuda
