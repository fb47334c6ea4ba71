// Placeholder until the kernels land.
#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
void register_dropout(KernelTable&) {}
}  // namespace engine::cpu
