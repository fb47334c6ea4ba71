// Placeholder until the kernels land.
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
void register_batch_norm(KernelTable&) {}
}  // namespace engine::cpu
