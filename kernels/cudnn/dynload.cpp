// Run-time loading of cuBLAS and cuDNN (see dynload.h for the scheme and the search order).
#include "kernels/cudnn/dynload.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "engine/error.h"

#ifndef ENGINE_CUDA_TOOLKIT_LIBDIR
#define ENGINE_CUDA_TOOLKIT_LIBDIR "/usr/local/cuda/lib64"
#endif

namespace engine::cudnn::dyn {
namespace {

#define ENGINE_STR2(x) #x
#define ENGINE_STR(x) ENGINE_STR2(x)

struct Library {
  Library(const char* t, const char* so, int mj) : title(t), soname(so), major(mj) {}
  const char* title;   // "cuBLAS"
  const char* soname;  // "libcublas.so.13"
  int major;           // the headers' major version
  void* handle = nullptr;
  std::string path;    // where it was loaded from
  std::string error;   // why it was not
  std::once_flag once;
};

Library& library(Lib lib) {
  static Library cublas{"cuBLAS", "libcublas.so." ENGINE_STR(CUBLAS_VER_MAJOR), CUBLAS_VER_MAJOR};
  static Library cudnn{"cuDNN", "libcudnn.so." ENGINE_STR(CUDNN_MAJOR), CUDNN_MAJOR};
  return lib == Lib::Cublas ? cublas : cudnn;
}

std::vector<std::string> split_path(const char* s) {
  std::vector<std::string> out;
  if (!s) return out;
  std::string cur;
  for (const char* p = s;; ++p) {
    if (*p == ':' || *p == '\0') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

std::string loaded_path(void* handle, const std::string& fallback) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0])
    return map->l_name;
  return fallback;
}

// The library's own report of its version, as "13.0.2"; "" when it gives none.
std::string reported_version(Lib lib, void* handle, int* major) {
  if (lib == Lib::Cudnn) {
    auto get = reinterpret_cast<size_t (*)()>(dlsym(handle, "cudnnGetVersion"));
    if (!get) return "";
    const size_t v = get();  // major * 10000 + minor * 100 + patch (cuDNN 9)
    *major = static_cast<int>(v / 10000);
    return detail::concat(v / 10000, ".", v / 100 % 100, ".", v % 100);
  }
  auto prop = reinterpret_cast<cublasStatus_t (*)(libraryPropertyType, int*)>(
      dlsym(handle, "cublasGetProperty"));
  int mj = 0, mn = 0, pl = 0;
  if (!prop || prop(MAJOR_VERSION, &mj) != CUBLAS_STATUS_SUCCESS ||
      prop(MINOR_VERSION, &mn) != CUBLAS_STATUS_SUCCESS ||
      prop(PATCH_LEVEL, &pl) != CUBLAS_STATUS_SUCCESS)
    return "";
  *major = mj;
  return detail::concat(mj, ".", mn, ".", pl);
}

void load(Lib lib, Library& l) {
  const char* env = std::getenv("ENGINE_CUDA_LIBRARY_PATH");
  std::vector<std::string> candidates;
  const bool explicit_path = env && *env;
  for (const std::string& dir : split_path(env)) candidates.push_back(dir + "/" + l.soname);
  if (!explicit_path) {
    candidates.push_back(l.soname);  // the loader's own search
    candidates.push_back(std::string(ENGINE_CUDA_TOOLKIT_LIBDIR) + "/" + l.soname);
  }
  std::string last_error;
  for (const std::string& c : candidates) {
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      // Keep the most telling message: one about a file that exists but does not load beats
      // "cannot open shared object file".
      if (e && (last_error.empty() || std::string(e).find("No such file") == std::string::npos))
        last_error = e;
      continue;
    }
    int major = 0;
    const std::string version = reported_version(lib, h, &major);
    const std::string path = loaded_path(h, c);
    if (version.empty() || major != l.major) {
      last_error = detail::concat(path, " reports version ", version.empty() ? "?" : version,
                                  "; this build needs major version ", l.major);
      dlclose(h);
      continue;
    }
    l.handle = h;
    l.path = detail::concat(l.title, " ", version, " from ", path);
    return;
  }
  const std::string where =
      explicit_path ? detail::concat("ENGINE_CUDA_LIBRARY_PATH (", env, ")")
                    : std::string("the loader's search path (LD_LIBRARY_PATH, RUNPATH, "
                                  "ld.so.cache, /lib, /usr/lib) or " ENGINE_CUDA_TOOLKIT_LIBDIR
                                  " (ENGINE_CUDA_LIBRARY_PATH names other folders)");
  l.error = detail::concat(l.title, ": not loaded: no usable ", l.soname, " (the ", l.title, " ",
                           l.major, " this build was compiled against) in ", where,
                           last_error.empty() ? "" : "; last error: ", last_error);
}

Library& loaded(Lib lib) {
  Library& l = library(lib);
  std::call_once(l.once, [&] { load(lib, l); });
  return l;
}

}  // namespace

void* symbol(Lib lib, const char* name) {
  Library& l = loaded(lib);
  if (!l.handle) throw Error(l.error + " (the native backend, --backend native, needs neither)");
  void* p = dlsym(l.handle, name);
  if (!p)
    throw Error(detail::concat(l.path, " has no symbol ", name, " (", l.title, " ", l.major,
                               ".x is expected to have it)"));
  return p;
}

bool libraries_available(std::string* why) {
  std::string reasons;
  for (Lib lib : {Lib::Cublas, Lib::Cudnn}) {
    Library& l = loaded(lib);
    if (!l.handle) reasons += (reasons.empty() ? "" : "\n") + l.error;
  }
  if (why) *why = reasons;
  return reasons.empty();
}

std::string libraries_description() {
  std::string out;
  for (Lib lib : {Lib::Cublas, Lib::Cudnn}) {
    Library& l = loaded(lib);
    out += (out.empty() ? "" : "\n") + (l.handle ? l.path : l.error);
  }
  return out;
}

}  // namespace engine::cudnn::dyn
