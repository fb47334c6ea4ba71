// Storage of the three kernel tables, their one-time filling, and what engine/op_list.h says
// about each slot (names, families, which backend is meant to have it).
#include "engine/op_table.h"

#include <cstring>
#include <iterator>
#include <mutex>
#include <string>

namespace engine {
namespace {
KernelTable g_tables[kNumBackends];
std::once_flag g_once;

struct FamilyInfo {
  const char* name;
  const char* native;  // ENGINE_FAMILY's columns, as written there
  const char* cudnn;
};
constexpr FamilyInfo kFamilies[] = {
#define ENGINE_FAMILY(family, native, cudnn) {#family, #native, #cudnn},
#include "engine/op_list.h"
};

struct SlotInfo {
  const char* name;
  const char* family;
};
constexpr SlotInfo kSlots[] = {
#define ENGINE_SLOT(family, slot, ret, params) {#slot, #family},
#include "engine/op_list.h"
};
static_assert(std::size(kSlots) == kNumSlots);

const FamilyInfo& family_of(Slot s) {
  for (const FamilyInfo& f : kFamilies)
    if (std::strcmp(f.name, slot_family(s)) == 0) return f;
  throw Error(std::string("engine/op_list.h: slot ") + slot_name(s) + " names family " +
              slot_family(s) + ", which has no ENGINE_FAMILY line");
}

bool filled(const KernelTable& t, Slot s) {
  switch (s) {
#define ENGINE_SLOT(family, slot, ret, params) \
  case Slot::slot:                             \
    return t.slot != nullptr;
#include "engine/op_list.h"
  }
  return false;
}

bool same_kernel(const KernelTable& a, const KernelTable& b, Slot s) {
  switch (s) {
#define ENGINE_SLOT(family, slot, ret, params) \
  case Slot::slot:                             \
    return a.slot == b.slot;
#include "engine/op_list.h"
  }
  return false;
}
}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU:
      return "relu";
    case Activation::ReLU6:
      return "relu6";
    case Activation::Sigmoid:
      return "sigmoid";
    case Activation::Tanh:
      return "tanh";
  }
  return "?";
}

const char* slot_name(Slot s) { return kSlots[static_cast<int>(s)].name; }
const char* slot_family(Slot s) { return kSlots[static_cast<int>(s)].family; }

KernelTable& kernel_table(Backend b) {
  std::call_once(g_once, register_builtin_kernels);
  return g_tables[static_cast<int>(b)];
}

// Registration writes the raw tables directly (called inside call_once).
KernelTable& kernel_table_for_registration(Backend b) { return g_tables[static_cast<int>(b)]; }

KernelTable& kernels_for(const Device& d) { return kernel_table(backend_for(d)); }

bool supports(Backend b, Slot s) { return filled(kernel_table(b), s); }

const char* slot_support(Backend b, Slot s) {
  if (!supports(b, s)) return "missing";
  if (b != Backend::Cudnn) return "kernel";
  if (same_kernel(kernel_table(Backend::Cudnn), kernel_table(Backend::Native), s)) return "native";
  const char* lib = family_of(s).cudnn;
  // A cudnn kernel of its own in a family the list marks `native` shows as what it is.
  return std::strcmp(lib, "native") == 0 ? "kernel" : lib;
}

bool slot_expected_missing(Backend b, Slot s) {
  const FamilyInfo& f = family_of(s);
  const bool native_missing = std::strcmp(f.native, "missing") == 0;
  switch (b) {
    case Backend::Cpu:
      return false;
    case Backend::Native:
      return native_missing;
    case Backend::Cudnn:
      return std::strcmp(f.cudnn, "native") == 0 && native_missing;
  }
  return false;
}

}  // namespace engine
