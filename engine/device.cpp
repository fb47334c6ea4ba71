// Device names, backend names and the process/layer backend choice.
#include "engine/device.h"

#include "engine/error.h"

namespace engine {
namespace {
#ifdef ENGINE_HAVE_CUDNN
int g_default_backend = static_cast<int>(Backend::Cudnn);
#else
int g_default_backend = static_cast<int>(Backend::Native);
#endif
thread_local int t_override = -1;  // -1: no BackendScope active
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

Backend default_cuda_backend() { return static_cast<Backend>(g_default_backend); }

void set_default_cuda_backend(Backend b) {
  ENGINE_CHECK(b != Backend::Cpu, "set_default_cuda_backend: cpu is not a CUDA backend");
  g_default_backend = static_cast<int>(b);
}

BackendScope::BackendScope(Backend b) : prev_(t_override) { t_override = static_cast<int>(b); }
BackendScope::~BackendScope() { t_override = prev_; }

std::optional<Backend> backend_override() {
  if (t_override < 0) return std::nullopt;
  return static_cast<Backend>(t_override);
}

Backend backend_for(const Device& d) {
  if (d.is_cpu()) return Backend::Cpu;
  return static_cast<Backend>(t_override >= 0 ? t_override : g_default_backend);
}

}  // namespace engine
