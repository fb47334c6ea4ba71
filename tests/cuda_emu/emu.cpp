// The `emu` tier's CUDA runtime and block scheduler (the model is described in
// tests/cuda_emu/include/cuda_runtime.h). Single-threaded: a launch runs on the calling thread.
#include <cuda_runtime.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace emu {
namespace {

// ---- device memory: host memory with a capacity, so out-of-memory paths run ----
constexpr size_t kCapacity = size_t{8} << 30;  // 8 GiB of "device memory"
std::mutex g_mem_mu;
std::unordered_map<void*, size_t> g_blocks;
size_t g_used = 0;
cudaError_t g_last_error = cudaSuccess;
struct Guard {
  size_t used, block;
};
std::unordered_map<void*, Guard> g_guards;  // blocks the caching allocator has handed out
constexpr size_t kGuardChecked = 256;       // bytes past the end checked after each launch

// ---- fibers ----
// On x86-64 a switch saves the callee-saved registers on the old stack and loads the new stack
// pointer: about 20 instructions, where swapcontext also makes a system call for the signal mask
// (which took half the tier's time). Elsewhere, ucontext.
constexpr size_t kStackBytes = 256 * 1024;
#if defined(__x86_64__)
extern "C" void emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl emu_switch
.type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_switch, .-emu_switch
.section .note.GNU-stack, "", @progbits
.text
)");
struct Context {
  void* sp = nullptr;
};
// A new stack that "returns" into entry with the stack aligned as after a call.
void make_context(Context& c, char* stack, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(stack + kStackBytes) & ~uintptr_t{15};
  auto* p = reinterpret_cast<void**>(top);
  *--p = nullptr;                              // entry's return address: it never returns
  *--p = reinterpret_cast<void*>(entry);       // where emu_switch's ret goes
  for (int i = 0; i < 6; ++i) *--p = nullptr;  // rbp, rbx, r12-r15
  c.sp = p;
}
void switch_context(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
void make_context(Context& c, char* stack, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = kStackBytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---- the scheduler ----
enum class State { kReady, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  Context ctx;
  State state = State::kReady;
  uint3 tid;
  int linear = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;
  Context scheduler;
  Fiber* current = nullptr;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  int threads = 0;                   // of the running block
  std::vector<unsigned char> slots;  // warp shuffles: each thread's value, 16 bytes a thread
  std::vector<const void*> fresh;    // __shared__ variables this block has reached
  // The order fibers are resumed in: fixed, so a failure repeats; ENGINE_EMU_SEED picks another.
  std::mt19937 rng{
      std::getenv("ENGINE_EMU_SEED")
          ? static_cast<unsigned>(std::strtoul(std::getenv("ENGINE_EMU_SEED"), nullptr, 10))
          : 12345u};
};
Block g_block;             // one block runs at a time
const char* g_where = "";  // the running launch, for messages

void fiber_main() {
  Fiber* f = g_block.current;
  g_block.body(g_block.ctx);
  f->state = State::kDone;
  switch_context(f->ctx, g_block.scheduler);
  __builtin_unreachable();
}

// Back to the scheduler; returns when this fiber is resumed.
void yield_to_scheduler() {
  Fiber* f = g_block.current;
  switch_context(f->ctx, g_block.scheduler);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "cuda-emu: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string coords(const Fiber& f) {
  return std::string(g_where) + ", block (" + std::to_string(blockIdx.x) + "," +
         std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + ") thread (" +
         std::to_string(f.tid.x) + "," + std::to_string(f.tid.y) + "," + std::to_string(f.tid.z) +
         ")";
}

void run_block(int threads) {
  Block& b = g_block;
  b.threads = threads;
  b.fresh.clear();
  for (int i = 0; i < threads; ++i) {
    Fiber& f = b.fibers[static_cast<size_t>(i)];
    f.state = State::kReady;
    f.linear = i;
    f.tid = {static_cast<unsigned>(i) % blockDim.x,
             static_cast<unsigned>(i) / blockDim.x % blockDim.y,
             static_cast<unsigned>(i) / (blockDim.x * blockDim.y)};
    make_context(f.ctx, b.stacks[static_cast<size_t>(i)].get(), fiber_main);
  }
  std::vector<int> order(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) order[static_cast<size_t>(i)] = i;
  for (;;) {
    // Run every ready fiber until it blocks or ends, in a shuffled order.
    std::shuffle(order.begin(), order.end(), b.rng);
    bool ran = false;
    for (int i : order) {
      Fiber& f = b.fibers[static_cast<size_t>(i)];
      if (f.state != State::kReady) continue;
      ran = true;
      b.current = &f;
      threadIdx = f.tid;
      switch_context(b.scheduler, f.ctx);
    }
    // Release barriers whose threads have all arrived.
    int done = 0, at_block = 0, at_warp = 0;
    for (int i = 0; i < threads; ++i) {
      const State s = b.fibers[static_cast<size_t>(i)].state;
      done += s == State::kDone;
      at_block += s == State::kAtBlockBarrier;
      at_warp += s == State::kAtWarpBarrier;
    }
    if (done == threads) return;
    bool released = false;
    if (at_block > 0 && at_block + done == threads && at_warp == 0) {
      if (done > 0) {
        const Fiber* gone = nullptr;
        for (const Fiber& f : b.fibers)
          if (f.state == State::kDone) gone = &f;
        fail("__syncthreads reached by " + std::to_string(at_block) + " of " +
             std::to_string(threads) + " threads, the others having returned (e.g. " +
             coords(*gone) + "): a barrier in divergent code");
      }
      for (int i = 0; i < threads; ++i) b.fibers[static_cast<size_t>(i)].state = State::kReady;
      released = true;
    }
    for (int w = 0; w * warpSize < threads; ++w) {
      const int lo = w * warpSize, hi = std::min(threads, lo + warpSize);
      int waiting = 0, live = 0;
      for (int i = lo; i < hi; ++i) {
        const State s = b.fibers[static_cast<size_t>(i)].state;
        live += s != State::kDone;
        waiting += s == State::kAtWarpBarrier;
      }
      if (waiting > 0 && waiting == live) {
        for (int i = lo; i < hi; ++i)
          if (b.fibers[static_cast<size_t>(i)].state == State::kAtWarpBarrier)
            b.fibers[static_cast<size_t>(i)].state = State::kReady;
        released = true;
      }
    }
    if (!ran && !released)
      fail(std::string(g_where) + ": deadlock: " + std::to_string(at_block) +
           " threads wait at __syncthreads, " + std::to_string(at_warp) + " at a warp shuffle, " +
           std::to_string(done) + " have returned (block of " + std::to_string(threads) + ")");
  }
}

// The guard: each 4-byte word 0x7fa5a5a5, a signalling NaN. A kernel reading it reads a NaN;
// arithmetic on it gives a quiet NaN (0x7fe5a5a5), so even `y[n] = a[n] + b[n]` one past the end
// changes the guard (an all-ones guard would come back unchanged from NaN + NaN).
constexpr uint32_t kGuardWord = 0x7fa5a5a5u;
unsigned char guard_byte(size_t offset) {
  return static_cast<unsigned char>(kGuardWord >> (8 * (offset % 4)));  // little-endian words
}
void fill_guard(void* p, size_t from, size_t to) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = from; i < to; ++i) b[i] = guard_byte(i);
}
// The first byte past `used` (up to `limit` of them) that is not the guard's, or block if none.
size_t first_overwritten(const void* p, const Guard& g, size_t limit) {
  const auto* b = static_cast<const unsigned char*>(p);
  const size_t end = std::min(g.block, g.used + limit);
  for (size_t i = g.used; i < end; ++i)
    if (b[i] != guard_byte(i)) return i;
  return g.block;
}

void check_guards(const char* where) {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  for (const auto& [p, g] : g_guards) {
    const size_t i = first_overwritten(p, g, kGuardChecked);
    if (i < g.block)
      fail(std::string(where) + " wrote past the end of a " + std::to_string(g.used) +
           "-byte device buffer (byte " + std::to_string(i) + ")");
  }
}

void set_error(cudaError_t e) {
  if (g_last_error == cudaSuccess) g_last_error = e;
}

}  // namespace

int lane() { return g_block.current->linear % warpSize; }

void shared_fresh(void* p, size_t bytes) {
  for (const void* q : g_block.fresh)
    if (q == p) return;
  g_block.fresh.push_back(p);
  fill_guard(p, 0, bytes);
}

void sync_block() {
  g_block.current->state = State::kAtBlockBarrier;
  yield_to_scheduler();
}

// Two warp barriers: after the first every lane's value is in its slot; after the second every
// lane has read, so the slots can be written again by the next shuffle.
void warp_exchange(const void* mine, void* out, size_t bytes, int src_lane) {
  if (bytes > 16) fail(std::string(g_where) + ": warp shuffle of more than 16 bytes");
  Fiber* f = g_block.current;
  const int base = f->linear - f->linear % warpSize, src = base + src_lane % warpSize;
  std::memcpy(&g_block.slots[static_cast<size_t>(f->linear) * 16], mine, bytes);
  f->state = State::kAtWarpBarrier;
  yield_to_scheduler();
  if (src >= g_block.threads || g_block.fibers[static_cast<size_t>(src)].state == State::kDone)
    fail(std::string(g_where) + ": warp shuffle reads lane " + std::to_string(src_lane) +
         ", which has returned");
  std::memcpy(out, &g_block.slots[static_cast<size_t>(src) * 16], bytes);
  f->state = State::kAtWarpBarrier;
  yield_to_scheduler();
}

void run_grid(const LaunchConfig& c, const char* where, void (*body)(void*), void* ctx) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (threads == 0 || threads > 1024 || c.block.z > 64 || c.grid.x == 0 || c.grid.y == 0 ||
      c.grid.z == 0 || c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535 ||
      c.shared_bytes > 48 * 1024) {
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  Block& b = g_block;
  if (b.current != nullptr && b.body != nullptr) fail("kernel launched from inside a kernel");
  if (b.fibers.size() < threads) {
    b.fibers.resize(threads);
    while (b.stacks.size() < threads) b.stacks.emplace_back(new char[kStackBytes]);
    b.slots.resize(threads * 16);
  }
  b.body = body;
  b.ctx = ctx;
  g_where = where;
  blockDim = c.block;
  gridDim = c.grid;
  for (unsigned z = 0; z < c.grid.z; ++z)
    for (unsigned y = 0; y < c.grid.y; ++y)
      for (unsigned x = 0; x < c.grid.x; ++x) {
        blockIdx = {x, y, z};
        run_block(static_cast<int>(threads));
      }
  b.current = nullptr;
  b.body = nullptr;
  check_guards(where);
}

}  // namespace emu

// ---- the runtime API ----
using emu::g_blocks;
using emu::g_mem_mu;
using emu::g_used;

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  switch (attr) {
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      return cudaSuccess;  // as an H200
    case cudaDevAttrMaxPitch:
      *value = 2147483647;
      return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  if (bytes > emu::kCapacity - g_used) return cudaErrorMemoryAllocation;
  // 256-byte aligned, as cudaMalloc's blocks are; the fill makes reads of unwritten memory show.
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  void* q = std::aligned_alloc(256, rounded);
  if (q == nullptr) return cudaErrorMemoryAllocation;
  std::memset(q, 0xff, rounded);  // all-ones bytes: a NaN as float
  g_blocks[q] = rounded;
  g_used += rounded;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mem_mu);
  auto it = g_blocks.find(p);
  if (it == g_blocks.end()) return cudaErrorInvalidValue;
  g_used -= it->second;
  g_blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  *p = std::malloc(std::max<size_t>(bytes, 1));
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_mem_mu);
  *free_bytes = emu::kCapacity - g_used;
  *total_bytes = emu::kCapacity;
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t) {
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind, cudaStream_t) {
  if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
  for (size_t r = 0; r < height; ++r)
    std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                 width);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  if (bytes > 0) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static char stream_token;
  *s = reinterpret_cast<cudaStream_t>(&stream_token);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::g_last_error;
  emu::g_last_error = cudaSuccess;
  return e;
}
namespace {
struct ErrorText {
  cudaError_t code;
  const char *name, *text;
};
constexpr ErrorText kErrors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
};
const ErrorText& error_text(cudaError_t e) {
  static constexpr ErrorText kUnknown{cudaErrorInvalidValue, "cudaErrorUnknown", "unknown error"};
  for (const ErrorText& t : kErrors)
    if (t.code == e) return t;
  return kUnknown;
}
}  // namespace
const char* cudaGetErrorString(cudaError_t e) { return error_text(e).text; }
const char* cudaGetErrorName(cudaError_t e) { return error_text(e).name; }

void emuGuardBlock(void* p, size_t used, size_t block) {
  emu::fill_guard(p, used, block);
  std::lock_guard<std::mutex> lock(g_mem_mu);
  emu::g_guards[p] = {used, block};
}
void emuCheckBlock(void* p, size_t used, size_t block) {
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    emu::g_guards.erase(p);
  }
  const size_t i = emu::first_overwritten(p, {used, block}, block);
  if (i < block)
    emu::fail("a " + std::to_string(used) + "-byte device buffer was written past its end (byte " +
              std::to_string(i) + ") by some kernel since it was handed out");
}
