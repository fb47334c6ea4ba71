// The CUDA runtime glue of the native backend: error reporting, the process stream, the caching
// device allocator and the copy/memset routines that engine/storage.h calls for CUDA tensors.
// Registered only when a device answers (register_runtime), so a CUDA build on a machine without
// a GPU behaves as a CPU build: CUDA tensors fail with "no allocator for device type cuda".
#include <algorithm>
#include <cstdlib>

#include "engine/error.h"
#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  throw Error(detail::concat("CUDA call ", call, " failed at ", file, ":", line, ": ",
                             cudaGetErrorString(err), " (", cudaGetErrorName(err), ")"));
}

#ifndef ENGINE_CUDA_EMU
namespace {

std::string version_str(int v) {  // 13000 -> "13.0"
  return detail::concat(v / 1000, ".", v % 1000 / 10);
}

// Why the device cannot run this build's kernels ("" when it can): the build's architectures
// (CMAKE_CUDA_ARCHITECTURES: "90" is sm_90 code plus compute_90 PTX, "90-real" the code alone,
// "90-virtual" the PTX alone) against the device's compute capability. Code for sm_XY runs on
// X.Y..X.9; PTX for compute_XY is compiled by the driver for any X.Y or newer.
std::string arch_mismatch(int dev) {
  const std::string archs = ENGINE_CUDA_ARCHS;
  if (archs.empty() || archs == "native" || archs == "all" || archs == "all-major") return "";
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  const int cc = major * 10 + minor;
  size_t pos = 0;
  while (pos < archs.size()) {
    size_t end = archs.find(';', pos);
    if (end == std::string::npos) end = archs.size();
    const std::string a = archs.substr(pos, end - pos);
    pos = end + 1;
    const int n = std::atoi(a.c_str());
    const bool real = a.find("-virtual") == std::string::npos;
    const bool ptx = a.find("-real") == std::string::npos;
    if ((real && n / 10 == major && n <= cc) || (ptx && n <= cc)) return "";
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, dev);
  return detail::concat("the GPU (", prop.name, ") has compute capability ", major, ".", minor,
                        "; this build has kernels for CUDA architectures ", archs,
                        " only (rebuild with -DCMAKE_CUDA_ARCHITECTURES=", cc, ")");
}

}  // namespace
#endif

bool cuda_available(std::string* why) {
  static const std::string reason = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear it, so that it is not reported by a later, unrelated check
      std::string r = detail::concat("cudaGetDeviceCount: ", cudaGetErrorString(err), " (",
                                     cudaGetErrorName(err), ")");
#ifndef ENGINE_CUDA_EMU
      // A driver older than the runtime: say both versions, so the fix is plain.
      int driver = 0, runtime = 0;
      cudaDriverGetVersion(&driver);
      cudaRuntimeGetVersion(&runtime);
      if (driver == 0)
        r += ": no NVIDIA driver found (libcuda.so.1 did not load)";
      else if (err == cudaErrorInsufficientDriver || driver < runtime)
        r += detail::concat(": the driver supports CUDA ", version_str(driver),
                            ", this build's runtime is CUDA ", version_str(runtime),
                            " and needs a driver for CUDA ", version_str(runtime), " or newer");
#endif
      return r;
    }
    if (count == 0) return std::string("cudaGetDeviceCount: no CUDA device");
#ifndef ENGINE_CUDA_EMU
    int dev = 0;
    if (cudaGetDevice(&dev) == cudaSuccess) {
      const std::string arch = arch_mismatch(dev);
      if (!arch.empty()) return arch;
    }
    cudaGetLastError();
#endif
    return std::string();
  }();
  if (why) *why = reason;
  return reason.empty();
}

cudaStream_t stream() {
  // Never destroyed: the runtime may already be unloaded when static destructors run.
  static cudaStream_t s = [] {
    cudaStream_t st = nullptr;
    ENGINE_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

// ---- caching allocator ----

size_t CachingAllocator::size_class(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  const size_t unit = bytes <= kSmallLimit ? kSmall : kLarge;
  return (bytes + unit - 1) / unit * unit;
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (void* p = cache_.take(cls)) {
#ifdef ENGINE_CUDA_EMU
    emuGuardBlock(p, bytes, cls);  // the emulated test tier's overrun check (tests/cuda_emu)
#endif
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, cls);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // out-of-memory is not sticky; clear it before retrying
    release_cache_locked();
    err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw Error(detail::concat("cuda allocator: out of memory allocating ", bytes,
                                 " bytes (device has ", free_b, " bytes free of ", total_b,
                                 "; this process holds ", reserved_, ")"));
    }
  }
  if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
  ++mallocs_;
  reserved_ += cls;
  peak_ = std::max(peak_, reserved_);
#ifdef ENGINE_CUDA_EMU
  emuGuardBlock(p, bytes, cls);
#endif
  return p;
}

void CachingAllocator::deallocate(void* p, size_t bytes) {
  if (!p) return;
  // Safe to reuse at once: all work runs on one stream, so any kernel still reading this block
  // was queued before whatever the next owner queues.
  const size_t cls = size_class(bytes);
#ifdef ENGINE_CUDA_EMU
  emuCheckBlock(p, bytes, cls);
#endif
  std::lock_guard<std::mutex> lock(mu_);
  cache_.put(cls, p);
}

void CachingAllocator::release_cache_locked() {
  cache_.drain([this](void* p, size_t cls) {
    cudaFree(p);  // synchronises the device; an error here leaves nothing to recover
    reserved_ -= cls;
  });
}

void CachingAllocator::release_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cache_locked();
}

size_t CachingAllocator::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}
size_t CachingAllocator::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_;
}
size_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.cached_bytes();
}
size_t CachingAllocator::driver_allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mallocs_;
}

CachingAllocator& device_allocator() {
  static CachingAllocator* a = new CachingAllocator;  // never destroyed, as stream()
  return *a;
}

// ---- pinned host memory ----

namespace {

// cudaHostAlloc is slow (it maps pages for the device), and the loader asks for the same batch
// size again and again: freed blocks wait in a free list per exact size and are handed out again.
class PinnedHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    if (void* p = cache_.take(bytes)) return p;
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error(detail::concat("pinned host allocator: cudaHostAlloc of ", bytes,
                                 " bytes failed: ", cudaGetErrorString(err)));
    }
    return p;
  }
  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    cache_.put(bytes, p);
  }

 private:
  std::mutex mu_;
  BlockCache cache_;  // exact sizes are the classes
};

}  // namespace

// ---- copies and memset ----

namespace {

void check_current(const Device& d, const char* what) {
  if (!d.is_cuda()) return;
  int cur = 0;
  ENGINE_CUDA_CHECK(cudaGetDevice(&cur));
  ENGINE_CHECK(d.index == cur, what, " on ", d.str(),
               ": the native CUDA backend uses one device, cuda:", cur);
}

void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  check_current(dst_dev, "copy");
  check_current(src_dev, "copy");
  const cudaMemcpyKind kind =
      dst_dev.is_cuda() ? (src_dev.is_cuda() ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                        : cudaMemcpyDeviceToHost;
  ENGINE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream()));
  // A host buffer on either side must be safe to read or reuse when we return.
  if (kind != cudaMemcpyDeviceToDevice) ENGINE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void memset_zero(void* dst, Device dev, size_t bytes) {
  check_current(dev, "zero");
  ENGINE_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream()));
}

}  // namespace

void register_runtime() {
  std::string why;
  if (!cuda_available(&why)) {
    register_cuda_unavailable_reason(why);
    return;
  }
  register_allocator(DeviceType::CUDA, &device_allocator());
  static PinnedHostAllocator* pinned = new PinnedHostAllocator;  // never destroyed, as stream()
  register_pinned_allocator(pinned);
  register_copy(copy);
  register_memset(memset_zero);
}

}  // namespace engine::cuda
