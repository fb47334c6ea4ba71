// CPU allocator (64-byte aligned, so vector loads never split a cache line) and the registries.
#include "engine/storage.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

#include "engine/block_cache.h"
#include "engine/error.h"
#include "engine/op_table.h"

namespace engine {
namespace {

// Blocks of at least kCachedFrom bytes are mapped on their own and, when freed, kept on a free
// list of their size class for the next request of that class, instead of going back to the C
// library. A training step asks for the same sizes in the same order every step, so after the
// first step every large request is a hit: no page faults (a fresh mapping costs one per 4 KB
// page, 13% of a full-width step here) and no fragmentation (glibc's heap, which serves blocks
// below its adaptive mmap threshold, kept 140 MB more resident than the tensors needed at full
// width: bench/RESULTS.md). A miss while more bytes are cached than in use first unmaps every
// cached block: memory left by a phase that has ended (a test pass at another batch size, a
// model that is gone) does not stay beside the next phase's. Size classes
// are 8 per power of two (at most 12.5% rounding). Under AddressSanitizer every block comes from
// the C library, which the sanitizer checks.
#if defined(__SANITIZE_ADDRESS__)
#define ENGINE_CPU_BLOCK_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ENGINE_CPU_BLOCK_CACHE 0
#endif
#endif
#ifndef ENGINE_CPU_BLOCK_CACHE
#define ENGINE_CPU_BLOCK_CACHE 1
#endif

class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kCachedFrom = size_t(1) << 20;

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = ENGINE_CPU_BLOCK_CACHE && rounded >= kCachedFrom ? take(size_class(rounded))
                                                               : std::aligned_alloc(64, rounded);
    if (!p)
      throw Error(detail::concat("cpu allocator: out of memory allocating ", bytes, " bytes"));
    size_t now = live_.fetch_add(rounded) + rounded;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    const size_t rounded = (bytes + 63) / 64 * 64;
    live_.fetch_sub(rounded);
    if (ENGINE_CPU_BLOCK_CACHE && rounded >= kCachedFrom) {
      std::lock_guard<std::mutex> lock(mu_);
      cache_.put(size_class(rounded), p);
      return;
    }
    std::free(p);
  }
  size_t peak_bytes() const override { return peak_.load(); }

 private:
  // The smallest of 2^k * {8, 9, ..., 15} / 8, rounded up to whole pages, that holds n bytes.
  static size_t size_class(size_t n) {
    const int top = 63 - __builtin_clzll(n);  // 2^top <= n < 2^(top+1)
    const size_t step = size_t(1) << (top - 3);
    return ((n + step - 1) / step * step + 4095) / 4096 * 4096;
  }
  void* take(size_t cls) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (void* p = cache_.take(cls)) return p;
      if (cache_.cached_bytes() > live_.load()) {  // more cached than in use: a phase has ended
        cache_.drain([](void* b, size_t c) { munmap(b, c); });
      }
    }
    void* p = mmap(nullptr, cls, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }

  std::atomic<size_t> live_{0}, peak_{0};
  std::mutex mu_;
  BlockCache cache_;
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
  ENGINE_CHECK(g_copy, "copy ", src_dev.str(), " -> ", dst_dev.str(),
               ": no CUDA runtime in this build");
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
