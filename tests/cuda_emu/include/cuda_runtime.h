// The `emu` test tier's stand-in for <cuda_runtime.h>: just enough of the CUDA language and
// runtime for the native kernels (kernels/cuda/*.cu) to compile as plain C++ and run on the CPU,
// so that CI, which has no GPU, executes every kernel's index arithmetic, bounds checks and
// barrier placement against the CPU kernels. tests/cuda_emu/emu.cpp implements it.
//
// The model. A launch runs its blocks one after another on the calling thread. Within a block,
// each CUDA thread is a fiber (ucontext) with its own stack; a fiber runs until it reaches
// __syncthreads() (every thread of the block must), a warp shuffle (every live lane of its warp
// must) or its end, and the scheduler then runs the others, in a shuffled order each time, so
// that a kernel which reads shared memory another thread writes without a barrier in between
// sees the wrong values in some order. __shared__ is `static`: one copy per kernel, which is
// right while blocks run one at a time, filled with signalling NaNs when a block's first thread
// reaches the declaration (so a read before any write reads NaNs, not the last block's values).
// Kernel parameters are copied per thread, as each CUDA thread gets its own mutable copy. Device
// memory is host memory (malloc), with a capacity so that out-of-memory paths run; launch
// configurations are checked as the driver checks them.
//
// What it cannot show: device numerics (the host's expf/tanhf; FMA contraction is the host
// compiler's choice), races between blocks or between lanes of a warp (lanes run one at a time),
// register and shared-memory limits, and speed.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- the language ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
inline double2 make_double2(double x, double y) { return {x, y}; }

// The running fiber's coordinates (the scheduler sets them before it resumes a fiber).
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
constexpr int warpSize = 32;

// Device-side integer min/max of mixed types, as CUDA's overloads give them.
template <class A, class B>
requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B>
requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }
using std::isnan;

template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32);
}

namespace emu {
void sync_block();                                                            // __syncthreads
void warp_exchange(const void* mine, void* out, size_t bytes, int src_lane);  // one shuffle
int lane();  // this fiber's lane in its warp
// Called after each __shared__ declaration (translate.py adds the call): the first thread of a
// block to reach it fills the variable with signalling NaNs, as fresh shared memory is garbage.
void shared_fresh(void* p, size_t bytes);
}  // namespace emu

inline void __syncthreads() { emu::sync_block(); }
namespace emu {
template <class T>
inline T shuffle_from(T v, int src_lane) {
  T out;
  warp_exchange(&v, &out, sizeof(T), src_lane);
  return out;
}
}  // namespace emu
// The two shuffles the kernels use; a lane whose source is past its width-wide segment (down)
// gets its own value, as on the device.
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = warpSize) {
  const int l = emu::lane();
  return emu::shuffle_from(v, (l & ~(width - 1)) | ((l ^ lane_mask) & (width - 1)));
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = warpSize) {
  const int l = emu::lane(), d = static_cast<int>(delta);
  return emu::shuffle_from(v, (l & (width - 1)) + d < width ? l + d : l);
}

// ---- the runtime ----
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxPitch = 11,
  cudaDevAttrMultiProcessorCount = 16,
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamNonBlocking = 1;
constexpr unsigned cudaHostAllocDefault = 0;

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind kind,
                              cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);

// The resident blocks per multiprocessor of an H200 for a kernel that no register or
// shared-memory limit holds back: 2048 threads per SM, at most 32 blocks.
template <class Kernel>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, Kernel, int threads,
                                                                 size_t) {
  if (threads <= 0 || threads > 1024) return cudaErrorInvalidValue;
  *blocks = std::min(32, 2048 / threads);
  return cudaSuccess;
}

// Emulator only, called by the caching allocator (kernels/cuda/runtime.cpp, under
// ENGINE_CUDA_EMU): the bytes of a block past the `used` its owner asked for are set to a guard
// (signalling NaNs) when the block is handed out, so a kernel reading past the end of its tensor
// reads NaNs, and
// checked after every launch (the first 256 of them) and when the block is given back (all), so
// a kernel writing there fails with the launch that did it.
void emuGuardBlock(void* p, size_t used, size_t block);
void emuCheckBlock(void* p, size_t used, size_t block);

// ---- launches: tests/cuda_emu/translate.py rewrites `k<<<grid, block, smem, stream>>>(args)`
// into emu::launch(emu::config(grid, block, smem, stream), "k at f.cu:L",
//                  [=](auto... a) { k(a...); }, args) ----
namespace emu {

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
};
inline LaunchConfig config(dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t = nullptr) {
  return {grid, block, shared_bytes};
}

// Runs body(ctx) once per thread of every block (see the model above); a bad configuration is
// recorded for cudaGetLastError, as the driver does, and nothing runs. `where` names the kernel
// and the launch's source line in any failure.
void run_grid(const LaunchConfig& c, const char* where, void (*body)(void*), void* ctx);

template <class Kernel, class... Args>
void launch(const LaunchConfig& c, const char* where, Kernel kernel, Args&&... args) {
  struct Ctx {
    Kernel kernel;
    std::tuple<std::decay_t<Args>...> args;
  } ctx{kernel, {std::forward<Args>(args)...}};
  run_grid(
      c, where,
      [](void* p) {
        auto& x = *static_cast<Ctx*>(p);
        std::apply(x.kernel, x.args);  // the generic lambda takes each by value: a copy per thread
      },
      &ctx);
}

}  // namespace emu
