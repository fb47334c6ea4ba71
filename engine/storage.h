// Storage: one reference-counted block of device memory, obtained from the allocator registered
// for its device type. Tensors are views (shape + offset) onto a Storage, so reshape and flatten
// share bytes. A CUDA backend plugs in by registering an Allocator for DeviceType::CUDA and the
// copy routines below; nothing above this file changes.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "engine/device.h"

namespace engine {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual size_t peak_bytes() const { return 0; }
};

// Registry: one allocator per device type. The CPU allocator is built in.
Allocator* allocator_for(DeviceType t);
void register_allocator(DeviceType t, Allocator* a);
// Whether CUDA tensors can be made: a CUDA build with a GPU that answers.
bool cuda_device_available();
// A CUDA build on a machine where no device answers says why here (the CUDA runtime calls it), so
// that making a CUDA tensor fails with the reason rather than "this build has no CUDA support".
void register_cuda_unavailable_reason(const std::string& why);

// Page-locked ("pinned") host memory, for batches that are copied to a GPU: the copy engine can
// read it directly, so host-to-device copies run at full speed. The CUDA runtime registers one;
// without it (no CUDA in the build or no GPU) pinned_allocator() is null and callers use the
// plain CPU allocator.
void register_pinned_allocator(Allocator* a);
Allocator* pinned_allocator();

// Copies between devices; CPU<->CPU is memcpy. Other pairs come from the CUDA runtime when present.
using CopyFn = void (*)(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void register_copy(CopyFn fn);
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
// dst = 0 bytes on any device.
using MemsetFn = void (*)(void* dst, Device dev, size_t bytes);
void register_memset(MemsetFn fn);
void zero_bytes(void* dst, Device dev, size_t bytes);

// Caps the bytes that Storage may allocate on this thread while the cap lives (the innermost cap
// rules; freeing does not give bytes back), so that sizes read from a file cannot make the engine
// allocate more than the file justifies: app::load_weights builds the model a weights file names
// within a bound set by the bytes of the file's tensors, and train builds its model (from flags or
// a resumed state) within a quarter of the machine's memory. Going over throws Error starting
// with `what`.
class AllocationCap {
 public:
  AllocationCap(size_t bytes, std::string what);
  ~AllocationCap();
  AllocationCap(const AllocationCap&) = delete;
  AllocationCap& operator=(const AllocationCap&) = delete;
  // Throws if `bytes` more would go over the innermost cap; otherwise counts them against it.
  static void charge(size_t bytes);

 private:
  size_t cap_, used_ = 0;
  std::string what_;
  AllocationCap* outer_;
};

class Storage {
 public:
  Storage(size_t bytes, Device device);
  // CPU storage from a given allocator (the pinned one).
  Storage(size_t bytes, Device device, Allocator* allocator);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
};

}  // namespace engine
