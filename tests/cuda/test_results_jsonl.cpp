// ENGINE_TEST_JSONL=FILE: one JSON line appended to FILE as each test ends (name, status, time,
// the first failure or the skip's reason), flushed at once. tools/gpu_check.sh sets it, so a test
// process killed by a timeout or a device fault keeps every result it finished; gtest's own JSON
// (--gtest_output) is written only at the end. No test here: this file only installs the listener.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

class JsonLines : public testing::EmptyTestEventListener {
 public:
  explicit JsonLines(std::FILE* f) : f_(f) {}
  void OnTestStart(const testing::TestInfo&) override { message_.clear(); }
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!message_.empty() || (r.type() != testing::TestPartResult::kSkip && !r.failed())) return;
    message_ = std::string(r.file_name() ? r.file_name() : "?") + ":" +
               std::to_string(r.line_number()) + ": " + (r.message() ? r.message() : "");
  }
  void OnTestEnd(const testing::TestInfo& t) override {
    const testing::TestResult& r = *t.result();
    const char* status = r.Failed() ? "FAILED" : r.Skipped() ? "skipped" : "passed";
    std::fprintf(f_, "{\"test\": \"%s.%s\", \"status\": \"%s\", \"time_ms\": %lld, \"message\": \"%s\"}\n",
                 t.test_suite_name(), t.name(), status, static_cast<long long>(r.elapsed_time()),
                 json_escape(message_.substr(0, 2000)).c_str());
    std::fflush(f_);
  }

 private:
  std::FILE* f_;
  std::string message_;
};

// Installed before main runs (gtest_main calls RUN_ALL_TESTS after static initialisation).
const bool g_installed = [] {
  const char* path = std::getenv("ENGINE_TEST_JSONL");
  if (!path || !*path) return false;
  std::FILE* f = std::fopen(path, "a");
  if (!f) {
    std::fprintf(stderr, "ENGINE_TEST_JSONL=%s: cannot open for appending\n", path);
    return false;
  }
  testing::UnitTest::GetInstance()->listeners().Append(new JsonLines(f));
  return true;
}();

}  // namespace
