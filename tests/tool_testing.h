// Running the command-line programs from tests as a user runs them: a temporary folder, a child
// process with its stdout/stderr captured, waiting with a time limit. Used by test_tools.cpp and
// test_transfer_tools.cpp.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/synthetic.h"

namespace tool_testing {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("engine_tools_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

// The small synthetic set the tool tests share (made once per process): 6 classes, 12 training
// and 5 test images per class, 7 unlabelled, 64x64 JPEGs.
inline const std::string& small_dataset() {
  static TempDir dir;
  static const std::string root = [] {
    data::SyntheticOptions o;
    o.out_dir = dir.str();
    o.train_per_class = 12;
    o.test_per_class = 5;
    o.pred_count = 7;
    o.size = 64;
    o.seed = 11;
    data::make_synthetic_dataset(o);
    return o.out_dir;
  }();
  return root;
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct ToolRun {
  int rc = -1;             // exit status, or 128 + signal
  int signal = 0;          // the signal that ended the process; 0 when it exited
  bool timed_out = false;  // killed by wait_for after its time limit
  std::string out, err;
};

// Starts tools/<tool> with args; stdout/stderr go to files under dir. Returns the pid.
inline pid_t spawn(const std::string& tool, const std::vector<std::string>& args,
                   const std::string& log, const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> argv_s = {std::string(ENGINE_TOOL_DIR) + "/" + tool};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
    int o = open((log + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open((log + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    setenv("OMP_NUM_THREADS", "2", 1);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for the process to end; after limit_s seconds (0: no limit) kills it and says so.
inline ToolRun wait_for(pid_t pid, const std::string& log, int limit_s = 0) {
  int status = 0;
  ToolRun r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(limit_s);
  while (limit_s > 0 && waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (limit_s == 0 || r.timed_out) waitpid(pid, &status, 0);
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(log + ".out");
  r.err = slurp(log + ".err");
  return r;
}

// Polls the log until `text` shows on stdout; false when limit_s seconds pass first.
inline bool wait_for_text(const std::string& log, const std::string& text, int limit_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(limit_s);
  while (slurp(log + ".out").find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

inline ToolRun run(const std::string& tool, const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env = {}) {
  static int n = 0;
  std::string log = (fs::temp_directory_path() /
                     ("engine_tools_log_" + std::to_string(getpid()) + "_" + std::to_string(n++)))
                        .string();
  ToolRun r = wait_for(spawn(tool, args, log, env), log);
  std::remove((log + ".out").c_str());
  std::remove((log + ".err").c_str());
  return r;
}

}  // namespace tool_testing
