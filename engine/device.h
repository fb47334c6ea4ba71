// Where a tensor's bytes live (Device) and which implementation of an op runs (Backend).
// A CPU tensor always runs the `cpu` backend; a CUDA tensor runs `native` (our hand-written
// kernels) or `cudnn` (cuDNN/cuBLAS), chosen per process and overridable per layer.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace engine {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device&) const = default;
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;  // "cpu", "cuda:0"
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  static Device parse(const std::string& s);  // throws on anything but cpu, cuda, cuda:N
};

enum class Backend : uint8_t { Cpu = 0, Native = 1, Cudnn = 2 };
constexpr int kNumBackends = 3;
const char* backend_name(Backend b);
Backend parse_backend(const std::string& s);  // "cpu" | "native" | "cudnn"

// The backend that CUDA tensors use when no layer overrides it (default: Cudnn when built with
// cuDNN and libcudnn/libcublas load at run time, else Native, saying why once on stderr). Ignored
// for CPU tensors.
Backend default_cuda_backend();
void set_default_cuda_backend(Backend b);

// Scoped per-layer override: while alive, CUDA ops run on `b`.
class BackendScope {
 public:
  explicit BackendScope(Backend b);
  ~BackendScope();
  BackendScope(const BackendScope&) = delete;
  BackendScope& operator=(const BackendScope&) = delete;

 private:
  int prev_;
};

// The backend an op on `d` runs on now.
Backend backend_for(const Device& d);
// The innermost BackendScope's backend, if one is active. Autograd records it with each node and
// re-enters it for the node's backward, so a layer's gradients run on the layer's backend.
std::optional<Backend> backend_override();

}  // namespace engine
