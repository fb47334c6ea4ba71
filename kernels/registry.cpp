// The list of every kernel compiled into this build, per backend. Adding a kernel file means
// adding its register_* call here (and its slot in engine/op_table.h).
#include "engine/op_table.h"
#include "kernels/cpu/cpu_util.h"

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
}

}  // namespace engine
