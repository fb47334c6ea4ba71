// Storage of the three kernel tables and their one-time filling.
#include "engine/op_table.h"

#include <mutex>

namespace engine {
namespace {
KernelTable g_tables[kNumBackends];
std::once_flag g_once;
}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU: return "relu";
    case Activation::ReLU6: return "relu6";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
  }
  return "?";
}

KernelTable& kernel_table(Backend b) {
  std::call_once(g_once, register_builtin_kernels);
  return g_tables[static_cast<int>(b)];
}

// Registration writes the raw tables directly (called inside call_once).
KernelTable& kernel_table_for_registration(Backend b) { return g_tables[static_cast<int>(b)]; }

KernelTable& kernels_for(const Device& d) { return kernel_table(backend_for(d)); }

}  // namespace engine
