// A progress bar for long loops: on a terminal one line redrawn in place ("epoch 2/10
// [#####.....] 120/450 loss 1.234 acc 0.567 85.2 img/s ETA 0:45"); when stdout is a file or a
// pipe, plain log lines at every tenth of the work instead, so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace app {

class Progress {
 public:
  // total: steps in the loop; label: printed first ("epoch 2/10").
  Progress(std::string label, int64_t total, std::FILE* out = stdout);
  // done: steps finished so far; extra: what follows the counts ("loss 1.23 acc 0.45").
  // images: images processed so far in this loop (for the rate).
  void update(int64_t done, const std::string& extra, int64_t images);
  // Ends the bar (newline on a terminal).
  void finish();
  static bool is_tty(std::FILE* f);

 private:
  std::string label_;
  int64_t total_, first_done_ = -1, first_images_ = 0, last_tenth_ = -1;
  std::FILE* out_;
  bool tty_, open_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1:02:03", "4:05"

}  // namespace app
