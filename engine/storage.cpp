// CPU allocator (64-byte aligned, so vector loads never split a cache line) and the registries.
#include "engine/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "engine/error.h"
#include "engine/op_table.h"

namespace engine {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw Error(detail::concat("cpu allocator: out of memory allocating ", bytes, " bytes"));
    size_t now = live_.fetch_add(rounded) + rounded;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    live_.fetch_sub((bytes + 63) / 64 * 64);
    std::free(p);
  }
  size_t peak_bytes() const override { return peak_.load(); }

 private:
  std::atomic<size_t> live_{0}, peak_{0};
};

CpuAllocator g_cpu_allocator;
Allocator* g_allocators[2] = {&g_cpu_allocator, nullptr};
Allocator* g_pinned = nullptr;
CopyFn g_copy = nullptr;
MemsetFn g_memset = nullptr;
std::string g_cuda_unavailable;  // set by the CUDA runtime when no device answers

// The CUDA runtime registers its allocator and copies along with its kernels; make sure that has
// happened before the first CUDA tensor is made, whatever touches the engine first.
void ensure_backends_registered() { kernel_table(Backend::Cpu); }

}  // namespace

void register_cuda_unavailable_reason(const std::string& why) { g_cuda_unavailable = why; }

Allocator* allocator_for(DeviceType t) {
  if (t != DeviceType::CPU) ensure_backends_registered();
  Allocator* a = g_allocators[static_cast<int>(t)];
  ENGINE_CHECK(a, "no allocator for device type ", t == DeviceType::CUDA ? "cuda" : "cpu", ": ",
               g_cuda_unavailable.empty() ? std::string("this build has no CUDA support")
                                          : "no usable CUDA device (" + g_cuda_unavailable + ")");
  return a;
}

bool cuda_device_available() {
  ensure_backends_registered();
  return g_allocators[static_cast<int>(DeviceType::CUDA)] != nullptr;
}

void register_allocator(DeviceType t, Allocator* a) { g_allocators[static_cast<int>(t)] = a; }
void register_copy(CopyFn fn) { g_copy = fn; }
void register_pinned_allocator(Allocator* a) { g_pinned = a; }
Allocator* pinned_allocator() {
  ensure_backends_registered();
  return g_pinned;
}
void register_memset(MemsetFn fn) { g_memset = fn; }

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  ensure_backends_registered();
  ENGINE_CHECK(g_copy, "copy ", src_dev.str(), " -> ", dst_dev.str(), ": no CUDA runtime in this build");
  g_copy(dst, dst_dev, src, src_dev, bytes);
}

void zero_bytes(void* dst, Device dev, size_t bytes) {
  if (bytes == 0) return;
  if (dev.is_cpu()) {
    std::memset(dst, 0, bytes);
    return;
  }
  ensure_backends_registered();
  ENGINE_CHECK(g_memset, "zero on ", dev.str(), ": no CUDA runtime in this build");
  g_memset(dst, dev, bytes);
}

namespace {
thread_local AllocationCap* t_cap = nullptr;
}  // namespace

AllocationCap::AllocationCap(size_t bytes, std::string what)
    : cap_(bytes), what_(std::move(what)), outer_(t_cap) {
  t_cap = this;
}

AllocationCap::~AllocationCap() { t_cap = outer_; }

void AllocationCap::charge(size_t bytes) {
  AllocationCap* c = t_cap;
  if (!c) return;
  ENGINE_CHECK(bytes <= c->cap_ - c->used_, c->what_, ": allocating ", bytes, " bytes after ",
               c->used_, " would exceed the cap of ", c->cap_, " bytes");
  c->used_ += bytes;
}

Storage::Storage(size_t bytes, Device device)
    : bytes_(bytes), device_(device), allocator_(allocator_for(device.type)) {
  AllocationCap::charge(bytes);
  data_ = allocator_->allocate(bytes);
}

Storage::Storage(size_t bytes, Device device, Allocator* allocator)
    : bytes_(bytes), device_(device), allocator_(allocator) {
  ENGINE_CHECK(allocator_, "Storage: null allocator");
  AllocationCap::charge(bytes);
  data_ = allocator_->allocate(bytes);
}

Storage::~Storage() { allocator_->deallocate(data_, bytes_); }

}  // namespace engine
