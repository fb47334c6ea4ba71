// Fills every backend compiled into this build by calling each register_<family> function that
// engine/op_list.h lists for it: adding a family there adds its calls here.
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
#define ENGINE_FAMILY(family, native_col, cudnn_col) cpu::register_##family(cpu);
#include "engine/op_list.h"

#ifdef ENGINE_HAVE_CUDA
  // The kernels are reachable only through CUDA tensors, which need the allocator; that (and the
  // copies) is registered only when a device answers, so without a GPU the CPU engine is unchanged.
  cuda::register_runtime();
  KernelTable& native = kernel_table_for_registration(Backend::Native);
#define ENGINE_FAMILY(family, native_col, cudnn_col) \
  ENGINE_IF_OWN_##native_col(cuda::register_##family(native);)
#include "engine/op_list.h"
#ifdef ENGINE_HAVE_CUDNN
  // cudnn = native + the slots cuDNN/cuBLAS implement: the families the list marks `native`
  // (and the slots a cudnn register function leaves alone) run the native kernels under either.
  KernelTable& cudnn = kernel_table_for_registration(Backend::Cudnn);
  cudnn = native;
#define ENGINE_FAMILY(family, native_col, cudnn_col) \
  ENGINE_IF_OWN_##cudnn_col(cudnn::register_##family(cudnn);)
#include "engine/op_list.h"
#endif
#endif
}

}  // namespace engine
