// Shared by the native CUDA backend: the checked-call macro, the process-wide stream, the caching
// device allocator, launch-size helpers (grids from the occupancy API), 16-byte vector access, the
// element-wise map driver of the memory-bound kernels, division by multiply-high, and the
// register_* functions that kernels/registry.cpp calls. One device (the current one, device 0
// unless the caller switched) and one stream per process: every kernel, copy and memset is queued
// on stream(), so work stays in order and a freed block can be handed out again at once.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/block_cache.h"
#include "engine/op_table.h"
#include "engine/storage.h"
#include "engine/tensor.h"

namespace engine::cuda {

// Throws engine::Error "<call> failed at <file>:<line>: <cuda error string> (<error name>)".
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

}  // namespace engine::cuda

// ENGINE_CUDA_CHECK(cudaMemcpyAsync(...)); after a kernel launch,
// ENGINE_CUDA_CHECK(cudaGetLastError()) reports a bad launch configuration.
#define ENGINE_CUDA_CHECK(call)                                                      \
  do {                                                                               \
    const cudaError_t engine_cuda_err_ = (call);                                     \
    if (engine_cuda_err_ != cudaSuccess)                                             \
      ::engine::cuda::throw_cuda_error(engine_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

namespace engine::cuda {

// Whether a CUDA device can be used. Never throws: with no device, no driver or a driver too old
// for this runtime it returns false and, when why is given, the reason ("cudaGetDeviceCount:
// no CUDA-capable device is detected (cudaErrorNoDevice)"). The answer is computed once.
bool cuda_available(std::string* why = nullptr);

// The stream every native-backend operation runs on (created on first use).
cudaStream_t stream();

// Caching allocator: freed blocks go to a free list per size class and are handed out again, so
// a training step allocates nothing from the driver once the first step has run. Size classes:
// multiples of 512 bytes up to 1 MiB, multiples of 2 MiB above (waste at most 512 B or 2 MiB per
// block, against the 2x of power-of-two classes). When cudaMalloc runs out of memory the cache is
// released and the allocation retried once; then an Error says out of memory, with the bytes
// asked and cudaMemGetInfo's free/total. Thread-safe.
class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  // Peak of the bytes held from the driver (in use + cached): the GPU memory the process needs.
  size_t peak_bytes() const override;
  size_t reserved_bytes() const;      // held from the driver now
  size_t cached_bytes() const;        // of which free, waiting in the cache
  size_t driver_allocations() const;  // cudaMalloc calls that succeeded, ever
  void release_cache();               // cudaFree every cached block
  static size_t size_class(size_t bytes);

 private:
  void release_cache_locked();
  mutable std::mutex mu_;
  BlockCache cache_;
  size_t reserved_ = 0, peak_ = 0, mallocs_ = 0;
};

// The process's device allocator (the one registered for DeviceType::CUDA).
CachingAllocator& device_allocator();

// Registers the allocator, copy and memset with engine/storage.h when cuda_available(); does
// nothing otherwise, so a CUDA build on a machine without a GPU runs the CPU engine unchanged.
void register_runtime();

// Kernel registration (native backend): register_<family>, defined in kernels/cuda/<family>.cu,
// for each family engine/op_list.h marks `kernel` in its native column.
#define ENGINE_FAMILY(family, native_col, cudnn_col) \
  ENGINE_IF_OWN_##native_col(void register_##family(KernelTable& t);)
#include "engine/op_list.h"

// Launch geometry for grid-stride loops: 256 threads, at most kMaxBlocks blocks (8 per SM on a
// 132-SM H200 with room to spare; the loop covers the rest).
constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 4096;
inline unsigned grid_for(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(b < kMaxBlocks ? b : kMaxBlocks);
}

inline float* fptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// ---- launch geometry sized to the device ----

// The current device's multiprocessor count, read once.
inline int multiprocessor_count() {
  static const int count = [] {
    int device = 0, sms = 0;
    ENGINE_CUDA_CHECK(cudaGetDevice(&device));
    ENGINE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }();
  return count;
}

// Blocks of kThreads threads of Kernel that the whole device holds at once: its occupancy
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor, which counts the kernel's registers and shared
// memory) times the multiprocessors, computed once per kernel. A grid-stride kernel launched with
// this many blocks runs as one wave, with no partial last wave.
template <auto Kernel, int kThreads = kBlock>
int64_t resident_blocks() {
  static const int64_t blocks = [] {
    int per_sm = 0;
    ENGINE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel, kThreads, 0));
    return int64_t{std::max(per_sm, 1)} * multiprocessor_count();
  }();
  return blocks;
}

// The grid of a grid-stride loop over `work` items, `per_thread` of them per thread per pass:
// the blocks the work fills, at most one resident wave (resident_blocks), at least one block.
template <auto Kernel, int kThreads = kBlock>
unsigned device_grid(int64_t work, int64_t per_thread = 1) {
  const int64_t per_block = int64_t{kThreads} * per_thread;
  return static_cast<unsigned>(std::clamp<int64_t>((work + per_block - 1) / per_block, 1,
                                                   resident_blocks<Kernel, kThreads>()));
}

// ---- 16-byte vector access ----

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// K consecutive floats moved as one access: a 16-byte vector load or store for K = 4 (the
// pointer p + i must then be 16-byte aligned), a plain float for K = 1.
template <int K>
struct alignas(4 * K) Chunk {
  float v[K];
};

template <int K>
__device__ __forceinline__ Chunk<K> load_chunk(const float* p, int64_t i) {
  return *reinterpret_cast<const Chunk<K>*>(p + i);
}

template <int K>
__device__ __forceinline__ void store_chunk(float* p, int64_t i, const Chunk<K>& c) {
  *reinterpret_cast<Chunk<K>*>(p + i) = c;
}

// ---- element-wise maps: several independent 16-byte loads in flight per thread ----
//
// An element-wise op is a struct with its pointers (__restrict__) and scalars and three members:
//   template <int K> struct Input       what one access of K elements reads (Chunks);
//   template <int K> Input<K> load(i)   reads elements i .. i + K - 1;
//   template <int K> void store(i, in)  computes them from `in` and writes them.
// map_kernel runs it over [0, n): each thread, per pass of its grid-stride loop, first issues
// the loads of kUnroll units (one grid stride apart, so each load instruction of a warp is
// coalesced) and only then computes and stores them, so kUnroll independent loads per input are
// in flight. With `vector` (every pointer 16-byte aligned) a unit is a float4 and the n % 4 tail
// is one element each for the first threads; without, a unit is one float. Every element is
// computed by the same expression either way, so the two paths agree bit for bit.
constexpr int kUnroll = 4;

// Kernels need the CUDA built-ins: nvcc or the emulator, not a host compiler reading this header.
#if defined(__CUDACC__) || defined(ENGINE_CUDA_EMU)

template <int K, class Op>
__device__ __forceinline__ void map_units(const Op& op, int64_t units, int64_t first,
                                          int64_t stride) {
  for (int64_t u0 = first; u0 < units; u0 += kUnroll * stride) {
    typename Op::template Input<K> in[kUnroll];
#pragma unroll
    for (int r = 0; r < kUnroll; ++r)
      if (u0 + r * stride < units) in[r] = op.template load<K>((u0 + r * stride) * K);
#pragma unroll
    for (int r = 0; r < kUnroll; ++r)
      if (u0 + r * stride < units) op.template store<K>((u0 + r * stride) * K, in[r]);
  }
}

template <class Op>
__global__ void map_kernel(Op op, int64_t n, bool vector) {
  const int64_t tid = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  if (!vector) return map_units<1>(op, n, tid, stride);
  map_units<4>(op, n / 4, tid, stride);
  const int64_t tail = n / 4 * 4 + tid;
  if (tail < n) op.template store<1>(tail, op.template load<1>(tail));
}

// The common op: y[i] = f(args at i) with kArity arguments (0, 1 or 2), each argument read from
// an input pointer, or with kInPlace the first one from y itself (one pointer to the memory, as
// __restrict__ requires). f is a functor with a __device__ operator().
template <int kArity, bool kInPlace, class F>
struct Map {
  static constexpr int kInputs = kArity - (kInPlace ? 1 : 0);  // pointers besides y
  const float* __restrict__ in[kInputs > 0 ? kInputs : 1];
  float* __restrict__ y;
  F f;

  template <int K>
  struct Input {
    Chunk<K> arg[kArity > 0 ? kArity : 1];
  };
  template <int K>
  __device__ Input<K> load(int64_t i) const {
    Input<K> a{};
    if constexpr (kInPlace) a.arg[0] = load_chunk<K>(y, i);
#pragma unroll
    for (int j = 0; j < kInputs; ++j) a.arg[j + (kInPlace ? 1 : 0)] = load_chunk<K>(in[j], i);
    return a;
  }
  template <int K>
  __device__ void store(int64_t i, const Input<K>& a) const {
    Chunk<K> out;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if constexpr (kArity == 0)
        out.v[k] = f();
      else if constexpr (kArity == 1)
        out.v[k] = f(a.arg[0].v[k]);
      else
        out.v[k] = f(a.arg[0].v[k], a.arg[1].v[k]);
    }
    store_chunk<K>(y, i, out);
  }
  // Whether every pointer allows 16-byte accesses (the vector path).
  bool aligned() const {
    bool ok = aligned16(y);
    for (int j = 0; j < kInputs; ++j) ok = ok && aligned16(in[j]);
    return ok;
  }
};

// The grid of map_kernel<Op> over n elements.
template <class Op>
unsigned map_grid(int64_t n, bool vector) {
  return device_grid<map_kernel<Op>>(vector ? std::max<int64_t>(n / 4, 1) : n, kUnroll);
}
#endif

// ---- division by a divisor fixed at launch ----

// n / d by multiply-high (Granlund and Montgomery's round-up method, as PyTorch's IntDivider):
// with l = ceil(log2 d) and m = floor(2^N (2^l - d) / d) + 1 for N-bit words,
// n / d = (mulhi(n, m) + n) >> l for every N-bit n. The sum must fit in N bits, so n < 2^(N-1):
// int32 and int64 indices that are not negative. U is uint32_t or uint64_t. One multiply, an add
// and a shift where an integer division is a subroutine of tens of instructions on the GPU
// (more for 64-bit).
template <class U>
struct FastDiv {
  U d = 1, m = 1;
  int l = 0;

  FastDiv() = default;
  // A divisor of 0 (an empty tensor's extent, never divided by) is taken as 1.
  explicit FastDiv(U divisor) : d(divisor > 0 ? divisor : 1) {
    while (l < static_cast<int>(8 * sizeof(U)) && (Wide{1} << l) < d) ++l;
    m = static_cast<U>(((Wide{1} << (8 * sizeof(U))) * ((Wide{1} << l) - d)) / d + 1);
  }

  __host__ __device__ __forceinline__ U div(U n) const { return (mulhi(n, m) + n) >> l; }
  __host__ __device__ __forceinline__ U mod(U n) const { return n - div(n) * d; }

 private:
  // Twice U's width, for the host's computation of m.
  using Wide = std::conditional_t<sizeof(U) == 4, uint64_t, unsigned __int128>;
  __host__ __device__ __forceinline__ static U mulhi(U a, U b) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(U) == 4)
      return __umulhi(a, b);
    else
      return __umul64hi(a, b);
#else
    return static_cast<U>((static_cast<Wide>(a) * b) >> (8 * sizeof(U)));
#endif
  }
};
using FastDiv32 = FastDiv<uint32_t>;
using FastDiv64 = FastDiv<uint64_t>;

// The activations on the device, shared by the activation kernels (activation.cu) and conv2d's
// epilogue (conv2d.cu), so both compute the same float. Comparisons are written so that NaN
// propagates, as in PyTorch (x < 0 is false for NaN).
template <Activation A>
__device__ __forceinline__ float act_forward(float v) {
  if constexpr (A == Activation::ReLU) {
    return v < 0.f ? 0.f : v;
  } else if constexpr (A == Activation::ReLU6) {
    return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
  } else if constexpr (A == Activation::Sigmoid) {
    return 1.f / (1.f + expf(-v));  // expf(-v) = inf below v = -88.7 gives exactly 0, the limit
  } else {
    return tanhf(v);
  }
}

// The derivative from the output y = v; at a kink it is PyTorch's: zero at relu's 0 and at
// relu6's 0 and 6.
template <Activation A>
__device__ __forceinline__ float act_backward(float v, float g) {
  if constexpr (A == Activation::ReLU) {
    return v > 0.f ? g : 0.f;
  } else if constexpr (A == Activation::ReLU6) {
    return v > 0.f && v < 6.f ? g : 0.f;
  } else if constexpr (A == Activation::Sigmoid) {
    return g * v * (1.f - v);
  } else {
    return g * (1.f - v * v);
  }
}

// Device scratch from the caching allocator, returned on scope exit.
class Scratch {
 public:
  explicit Scratch(size_t bytes) : bytes_(bytes), p_(device_allocator().allocate(bytes)) {}
  ~Scratch() { device_allocator().deallocate(p_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  size_t bytes_;
  void* p_;
};

}  // namespace engine::cuda
