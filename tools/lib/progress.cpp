// Progress bar; see progress.h.
#include "tools/lib/progress.h"

#include <unistd.h>

#include <cmath>

namespace app {

bool Progress::is_tty(std::FILE* f) { return isatty(fileno(f)) != 0; }

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  }
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::FILE* out)
    : label_(std::move(label)), total_(total), out_(out), tty_(is_tty(out)) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t done, const std::string& extra, int64_t images) {
  auto now = std::chrono::steady_clock::now();
  if (first_done_ < 0) {  // rates from the first update on (a resumed epoch starts part-way)
    first_done_ = done - 1 < 0 ? 0 : done - 1;
    first_images_ = 0;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? double(images - first_images_) / elapsed : 0;
  const double steps_rate = elapsed > 0 ? double(done - first_done_) / elapsed : 0;
  const double eta = steps_rate > 0 ? double(total_ - done) / steps_rate : NAN;
  const int64_t tenth = total_ > 0 ? done * 10 / total_ : 10;
  if (tty_) {
    // Redraw at most 10 times a second, and always at the end.
    if (done != total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    const int width = 20;
    const int filled = total_ > 0 ? int(width * done / total_) : width;
    std::string bar(size_t(filled), '#');
    bar.append(size_t(width - filled), '.');
    std::fprintf(out_, "\r%s [%s] %lld/%lld %s %.1f img/s ETA %s\033[K", label_.c_str(),
                 bar.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                 extra.c_str(), rate, format_duration(eta).c_str());
    open_ = true;
  } else {
    if (tenth == last_tenth_ && done != total_) return;
    if (tenth == last_tenth_) return;
    last_tenth_ = tenth;
    std::fprintf(out_, "%s %lld/%lld %s %.1f img/s ETA %s\n", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), extra.c_str(), rate,
                 format_duration(eta).c_str());
  }
  std::fflush(out_);
}

void Progress::finish() {
  if (tty_ && open_) {
    std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
  open_ = false;
}

}  // namespace app
