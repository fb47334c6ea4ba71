// The list of every kernel compiled into this build, per backend. Adding a kernel file means
// adding its register_* call here (and its slot in engine/op_table.h).
#include "engine/op_table.h"
#include "kernels/cpu/cpu_util.h"
#ifdef ENGINE_HAVE_CUDA
#include "kernels/cuda/cuda_util.h"
#endif
#ifdef ENGINE_HAVE_CUDNN
#include "kernels/cudnn/cudnn_util.h"
#endif

namespace engine {

void register_builtin_kernels() {
  KernelTable& cpu = kernel_table_for_registration(Backend::Cpu);
  cpu::register_conv2d(cpu);
  cpu::register_linear(cpu);
  cpu::register_elementwise(cpu);
  cpu::register_pool(cpu);
  cpu::register_batch_norm(cpu);
  cpu::register_activation(cpu);
  cpu::register_dropout(cpu);
  cpu::register_concat(cpu);
  cpu::register_loss(cpu);
  cpu::register_optim(cpu);

#ifdef ENGINE_HAVE_CUDA
  // The kernels are reachable only through CUDA tensors, which need the allocator; that (and the
  // copies) is registered only when a device answers, so without a GPU the CPU engine is unchanged.
  cuda::register_runtime();
  KernelTable& native = kernel_table_for_registration(Backend::Native);
  cuda::register_elementwise(native);
  cuda::register_activation(native);
  cuda::register_conv2d(native);
  cuda::register_linear(native);
  cuda::register_pool(native);
  cuda::register_batch_norm(native);
  cuda::register_dropout(native);
  cuda::register_concat(native);
  cuda::register_loss(native);
  cuda::register_optim(native);
#ifdef ENGINE_HAVE_CUDNN
  // cudnn = native + the slots cuDNN/cuBLAS implement: ops that cuDNN lacks (dropout, concat,
  // cross-entropy, optimizer updates, element-wise) run the native kernels under either backend.
  KernelTable& cudnn = kernel_table_for_registration(Backend::Cudnn);
  cudnn = native;
  cudnn::register_conv2d(cudnn);
  cudnn::register_pool(cudnn);
  cudnn::register_batch_norm(cudnn);
  cudnn::register_activation(cudnn);
  cudnn::register_linear(cudnn);
#endif
#endif
}

}  // namespace engine
