// op_support: the kernel support matrix (docs/SUPPORT_MATRIX.md), read at run time from the kernel
// tables this build fills: for each slot of engine/op_list.h and each backend, "kernel", "cuDNN"
// or "cuBLAS", "native" (the cudnn backend runs the native kernel) or "missing". Filling the
// tables needs no GPU, so this runs on any machine whose build has CUDA and cuDNN.
//
//   op_support                  print the matrix
//   op_support --write FILE     write it to FILE (the `support_matrix` build target)
//   op_support --check FILE     exit 1, saying how to regenerate, when FILE differs (the test)
//
// In a build without CUDA or cuDNN the native and cudnn columns cannot be read: --write fails and
// --check exits 77, which ctest counts as skipped, with the reason.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/file_io.h"
#include "engine/op_table.h"
#include "tools/lib/cli.h"

namespace {

constexpr int kSkipped = 77;  // the test's SKIP_RETURN_CODE
constexpr const char* kRegenerate = "cmake --build <build folder> --target support_matrix";

std::string matrix() {
  using engine::Backend;
  std::ostringstream out;
  out << "# Kernel support matrix\n\n"
      << "Generated from the kernel tables of a build with CUDA and cuDNN by `" << kRegenerate
      << "`\n(tools/op_support.cpp); the test `SupportMatrix.UpToDate` fails when this file is "
         "stale. The slots\nand their families come from `engine/op_list.h`.\n\n"
      << "- `kernel`: the backend's own kernel.\n"
      << "- `cuDNN`, `cuBLAS`: the cudnn backend's own, calling that library. Such a slot may "
         "still hand\n  some cases to the native kernel (ceil_mode pooling, non-uniform adaptive "
         "bins, eval-mode\n  batch-norm backward, tensors too large for int); kernels/cudnn/ says "
         "which.\n"
      << "- `native`: the cudnn backend runs the native kernel (the very same function).\n"
      << "- `missing`: no kernel; an op that needs it throws naming the slot and the backend.\n\n"
      << "| family | slot | cpu | native | cudnn |\n|---|---|---|---|---|\n";
  for (int i = 0; i < engine::kNumSlots; ++i) {
    const auto s = static_cast<engine::Slot>(i);
    out << "| " << engine::slot_family(s) << " | `" << engine::slot_name(s) << "` | "
        << engine::slot_support(Backend::Cpu, s) << " | "
        << engine::slot_support(Backend::Native, s) << " | "
        << engine::slot_support(Backend::Cudnn, s) << " |\n";
  }
  return out.str();
}

// The first line where `have` differs from `want`, as "line N: expected '...', found '...'".
std::string first_difference(const std::string& want, const std::string& have) {
  std::istringstream a(want), b(have);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(a, la));
    const bool more_b = static_cast<bool>(std::getline(b, lb));
    if (!more_a && !more_b) return "";
    if (!more_a || !more_b || la != lb) {
      return "line " + std::to_string(line) + ": expected '" + (more_a ? la : "(end of file)") +
             "', found '" + (more_b ? lb : "(end of file)") + "'";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Print, write or check the kernel support matrix (docs/SUPPORT_MATRIX.md)"};
  std::string write_path, check_path;
  app.add_option("--write", write_path, "write the matrix to this file");
  app.add_option("--check", check_path, "fail when this file is not the matrix this build makes")
      ->excludes(app.get_option("--write"));
  app::one_line_errors(app, "op_support");
  CLI11_PARSE(app, argc, argv);

#if !defined(ENGINE_HAVE_CUDA) || !defined(ENGINE_HAVE_CUDNN)
  const char* why =
      "this build has no CUDA or no cuDNN backend, so the matrix's native and cudnn columns "
      "cannot be read; use a build with nvcc and cuDNN";
  if (!check_path.empty()) {
    std::printf("op_support: skipped: %s\n", why);
    return kSkipped;
  }
  if (!write_path.empty()) {
    std::fprintf(stderr, "op_support: %s\n", why);
    return 1;
  }
#endif
  try {
    const std::string m = matrix();
    if (!write_path.empty()) {
      engine::write_file_atomic(write_path, m);
    } else if (!check_path.empty()) {
      std::ifstream f(check_path, std::ios::binary);
      if (!f) throw engine::Error("cannot read " + check_path);
      const std::string have((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const std::string diff = first_difference(m, have);
      if (!diff.empty()) {
        std::fprintf(stderr, "op_support: %s is stale (%s); regenerate it with `%s`\n",
                     check_path.c_str(), diff.c_str(), kRegenerate);
        return 1;
      }
      std::printf("%s matches the kernel tables of this build\n", check_path.c_str());
    } else {
      std::fputs(m.c_str(), stdout);
    }
  } catch (const std::exception& e) {
    return app::report_failure("op_support", e);
  }
  return 0;
}
