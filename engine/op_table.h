// The op table: for every kernel the engine calls, one slot per backend (cpu, native CUDA, cuDNN).
// engine/ops/*.cpp check shapes, allocate outputs and record autograd nodes, then call
// `ENGINE_KERNEL(x.device(), conv2d_forward)(...)`; kernels/<backend>/<family> files fill the
// slots in their register_<family> functions, which kernels/registry.cpp calls. The slots, their
// signatures and which backend registers which family come from one list, engine/op_list.h. A
// backend that lacks a kernel leaves the slot empty, and calling it throws an error naming the
// slot and the backend. This is the pattern of PyTorch ATen's DispatchStub and ggml's backend
// interface.
//
// Kernels receive contiguous tensors on one device with outputs already allocated; they check
// nothing about shapes (the op did) and never allocate autograd state.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"

namespace engine {

enum class Activation : uint8_t { ReLU, ReLU6, Sigmoid, Tanh };
const char* activation_name(Activation a);

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // y = act(conv(x, w) + b), the activation applied in the forward kernel's own output pass (for
  // eval-mode conv + folded BatchNorm + ReLU/ReLU6); none by default. The backward kernels ignore
  // it: conv2d's backward first applies the activation's derivative to gy.
  std::optional<Activation> activation;
};

struct Pool2dParams {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pooling only
};

// Hyper-parameters of the fused optimizer update kernels (one call per parameter tensor). Double,
// as PyTorch keeps them in Python floats: derived scalars such as 1 - beta2 are computed in double
// and rounded to float once, inside the kernel.
struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
};
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  int64_t step;    // 1-based, for bias correction
};

// One function-pointer member per slot of engine/op_list.h, with the signature and meaning stated
// there; an empty slot (nullptr) is a kernel the backend lacks.
struct KernelTable {
#define ENGINE_SLOT(family, slot, ret, params) ret(*slot) params = nullptr;
#include "engine/op_list.h"
};

// The slots as values, for code that walks all of them (the support matrix, the cross-backend
// test harness): Slot::conv2d_forward names KernelTable::conv2d_forward.
enum class Slot : int {
#define ENGINE_SLOT(family, slot, ret, params) slot,
#include "engine/op_list.h"
};
constexpr int kNumSlots = 0
#define ENGINE_SLOT(family, slot, ret, params) +1
#include "engine/op_list.h"
    ;
const char* slot_name(Slot s);    // "conv2d_forward"
const char* slot_family(Slot s);  // "conv2d"

// What backend b holds in slot s, read from the filled tables, in docs/SUPPORT_MATRIX.md's words:
// "kernel" (its own), "cuDNN" or "cuBLAS" (the cudnn backend's own, named by the library
// op_list.h gives the family), "native" (the cudnn backend runs the native kernel: the very same
// function), "missing" (empty).
const char* slot_support(Backend b, Slot s);
// Whether engine/op_list.h says slot s is meant to be empty on backend b: the family's column
// says `missing`, or the cudnn backend falls back to a native backend that has none. The
// cross-backend tests fail on any other empty slot.
bool slot_expected_missing(Backend b, Slot s);

// For lists over ENGINE_FAMILY's columns (see engine/op_list.h): ENGINE_IF_OWN_<value>(x) expands
// to x where the backend registers kernels of its own for the family, to nothing where not.
#define ENGINE_IF_OWN_kernel(x) x
#define ENGINE_IF_OWN_cuDNN(x) x
#define ENGINE_IF_OWN_cuBLAS(x) x
#define ENGINE_IF_OWN_native(x)
#define ENGINE_IF_OWN_missing(x)

// The table of one backend (filled on first use by register_builtin_kernels).
KernelTable& kernel_table(Backend b);
// The table for tensors on device d under the current backend choice.
KernelTable& kernels_for(const Device& d);

// Looks up a slot and throws "<slot>: backend <b> has no kernel" when it is empty.
#define ENGINE_KERNEL(device, slot)                                                           \
  (::engine::detail::require_kernel(::engine::kernels_for(device).slot, ::engine::Slot::slot, \
                                    (device)))

namespace detail {
template <typename Fn>
Fn require_kernel(Fn fn, Slot slot, const Device& d) {
  ENGINE_CHECK(fn != nullptr, slot_name(slot), ": backend ", backend_name(backend_for(d)),
               " has no kernel for tensors on ", d.str());
  return fn;
}
}  // namespace detail

// Whether backend b implements a slot, e.g. supports(Backend::Native, &KernelTable::add) or
// supports(Backend::Native, Slot::add); lets tools and tests ask before calling.
template <typename Fn>
bool supports(Backend b, Fn KernelTable::*slot) {
  return kernel_table(b).*slot != nullptr;
}
bool supports(Backend b, Slot s);

// For the register_* functions of kernels/ only: the table being filled (no call_once).
KernelTable& kernel_table_for_registration(Backend b);

// Defined in kernels/registry.cpp: fills all backends compiled into this build.
void register_builtin_kernels();

}  // namespace engine
