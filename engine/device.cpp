// Device names, backend names and the process/layer backend choice.
#include "engine/device.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "engine/error.h"
#ifdef ENGINE_HAVE_CUDNN
#include "kernels/cudnn/dynload.h"
#endif

namespace engine {
namespace {
// -1 until set or first read: then cudnn when built with cuDNN and its libraries load (they are
// loaded at run time), else native.
std::atomic<int> g_default_backend{-1};
thread_local int t_override = -1;  // -1: no BackendScope active

int resolve_default_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    int b = static_cast<int>(Backend::Native);
#ifdef ENGINE_HAVE_CUDNN
    std::string why;
    if (cudnn::dyn::libraries_available(&why))
      b = static_cast<int>(Backend::Cudnn);
    else
      std::fprintf(stderr, "engine: CUDA runs on the native backend: %s\n", why.c_str());
#endif
    int unset = -1;
    g_default_backend.compare_exchange_strong(unset, b);  // a set_default_cuda_backend wins
  });
  return g_default_backend.load();
}

int default_backend() {
  const int b = g_default_backend.load(std::memory_order_relaxed);
  return b >= 0 ? b : resolve_default_backend();
}
}  // namespace

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return cuda(std::stoi(s.substr(5)));
  throw Error("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Cpu: return "cpu";
    case Backend::Native: return "native";
    case Backend::Cudnn: return "cudnn";
  }
  return "?";
}

Backend parse_backend(const std::string& s) {
  if (s == "cpu") return Backend::Cpu;
  if (s == "native") return Backend::Native;
  if (s == "cudnn") return Backend::Cudnn;
  throw Error("unknown backend '" + s + "' (expected native or cudnn)");
}

Backend default_cuda_backend() { return static_cast<Backend>(default_backend()); }

void set_default_cuda_backend(Backend b) {
  ENGINE_CHECK(b != Backend::Cpu, "set_default_cuda_backend: cpu is not a CUDA backend");
  g_default_backend.store(static_cast<int>(b));
}

BackendScope::BackendScope(Backend b) : prev_(t_override) { t_override = static_cast<int>(b); }
BackendScope::~BackendScope() { t_override = prev_; }

std::optional<Backend> backend_override() {
  if (t_override < 0) return std::nullopt;
  return static_cast<Backend>(t_override);
}

Backend backend_for(const Device& d) {
  if (d.is_cpu()) return Backend::Cpu;
  return static_cast<Backend>(t_override >= 0 ? t_override : default_backend());
}

}  // namespace engine
