// cuda_info: what this machine offers the CUDA build, one line each: the OS, glibc, the NVIDIA
// driver and the CUDA runtime versions, the GPU (name, compute capability, SMs, memory) and
// whether this build's kernels run on it, and which cuBLAS and cuDNN were loaded from where (or why
// not). tools/gpu_check.sh runs it first on the GPU machine and puts its answer at the top of the
// report. Exit status 0 when a usable GPU answers, 1 when not (the reason is printed), 2 on bad
// arguments.
//
//   cuda_info [--json]
#include <gnu/libc-version.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/op_table.h"
#include "kernels/cuda/cuda_util.h"
#ifdef ENGINE_HAVE_CUDNN
#include "kernels/cudnn/dynload.h"
#endif

namespace {

std::string os_name() {
  std::ifstream f("/etc/os-release");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  return "unknown (no /etc/os-release)";
}

std::string cuda_version(int v) {  // 13000 -> "13.0"; 0 -> "none"
  if (v <= 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: cuda_info [--json]\n"
          "Prints the OS, glibc, NVIDIA driver and CUDA runtime versions, the GPU and whether\n"
          "this build's kernels run on it, and the cuBLAS/cuDNN libraries found (or why not).\n"
          "Exit status: 0 with a usable GPU, 1 without (the reason is printed).\n");
      return 0;
    } else {
      std::fprintf(stderr, "cuda_info: unknown argument '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  nlohmann::ordered_json out;
  out["os"] = os_name();
  out["glibc"] = gnu_get_libc_version();
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  out["driver_cuda"] = cuda_version(driver);
  out["runtime_cuda"] = cuda_version(runtime);
  engine::kernel_table(engine::Backend::Native);  // registers the runtime when a device answers
  std::string why;
  const bool usable = engine::cuda::cuda_available(&why);
  out["gpu_usable"] = usable;
  if (!usable) out["gpu_reason"] = why;
  int count = 0;
  if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
      out["gpu"] = p.name;
      out["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
      out["sms"] = p.multiProcessorCount;
      out["memory_gib"] = static_cast<double>(p.totalGlobalMem) / (1u << 30);
    }
  }
  cudaGetLastError();
#ifdef ENGINE_HAVE_CUDNN
  out["cuda_libraries"] = engine::cudnn::dyn::libraries_description();
#else
  out["cuda_libraries"] = "this build has no cudnn backend";
#endif
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    for (auto& [k, v] : out.items())
      std::printf("%s: %s\n", k.c_str(), v.is_string() ? v.get<std::string>().c_str()
                                                       : v.dump().c_str());
  }
  return usable ? 0 : 1;
}
