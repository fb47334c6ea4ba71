// The list of every kernel compiled into this build, per backend. Adding a kernel file means
// adding its register_* call here (and its slot in engine/op_table.h).
#include "engine/op_table.h"
#include "kernels/cpu/cpu_util.h"
#ifdef ENGINE_HAVE_CUDA
#include "kernels/cuda/cuda_util.h"
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
  // Backend::Cudnn: nothing yet.
#endif
}

}  // namespace engine
