// The learning-rate schedules: PyTorch 1.13's formulas, operation for operation, so the lr
// sequences agree with torch.optim.lr_scheduler to rounding (libm's cos is the one Python uses).
#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>

namespace engine {

using nlohmann::json;

namespace {

// JSON has no infinity, and ReduceLROnPlateau's best starts at +-inf: such values are written
// as the strings "inf", "-inf" and "nan".
json encode_double(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

struct Reader {
  const char* sched;
  json j;

  Reader(const char* name, const std::string& s) : sched(name) {
    try {
      j = json::parse(s);
    } catch (const json::exception& e) {
      throw Error(std::string(sched) + ".from_json: not valid JSON: " + e.what());
    }
    ENGINE_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), sched,
                 ".from_json: no scheduler type in ", s);
    const std::string type = j["type"].get<std::string>();
    ENGINE_CHECK(type == sched, sched, ".from_json: the state is for ", type, ", not ", sched);
  }
  const json& at(const char* key) const {
    ENGINE_CHECK(j.contains(key), sched, ".from_json: '", key, "' is missing");
    return j[key];
  }
  double number(const char* key) const {
    const json& v = at(key);
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      if (s == "inf") return std::numeric_limits<double>::infinity();
      if (s == "-inf") return -std::numeric_limits<double>::infinity();
      if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    }
    ENGINE_CHECK(v.is_number(), sched, ".from_json: '", key, "' is ", v.dump(), ", not a number");
    return v.get<double>();
  }
  int64_t integer(const char* key) const {
    const json& v = at(key);
    ENGINE_CHECK(v.is_number_integer(), sched, ".from_json: '", key, "' is ", v.dump(),
                 ", not an integer");
    return v.get<int64_t>();
  }
  std::string string(const char* key) const {
    const json& v = at(key);
    ENGINE_CHECK(v.is_string(), sched, ".from_json: '", key, "' is ", v.dump(), ", not a string");
    return v.get<std::string>();
  }
};

void check_epoch(const char* sched, int64_t last_epoch) {
  ENGINE_CHECK(last_epoch >= 0, sched, ".from_json: last_epoch ", last_epoch, " is negative");
}

}  // namespace

// ---- StepLR ----

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : LRScheduler(opt), step_size_(step_size), gamma_(gamma) {
  ENGINE_CHECK(step_size >= 1, "StepLR: step_size must be >= 1, got ", step_size);
  ENGINE_CHECK(std::isfinite(gamma) && gamma > 0, "StepLR: gamma must be finite and > 0, got ",
               gamma);
}

void StepLR::step() {
  ++last_epoch_;
  if (last_epoch_ % step_size_ == 0) opt_.set_lr(opt_.lr() * gamma_);
}

std::string StepLR::to_json() const {
  return json{
      {"type", name()}, {"step_size", step_size_}, {"gamma", gamma_}, {"last_epoch", last_epoch_}}
      .dump();
}

void StepLR::from_json(const std::string& s) {
  Reader r(name(), s);
  StepLR check(opt_, r.integer("step_size"), r.number("gamma"));  // validates the values
  const int64_t last_epoch = r.integer("last_epoch");
  check_epoch(name(), last_epoch);
  step_size_ = check.step_size_;
  gamma_ = check.gamma_;
  last_epoch_ = last_epoch;
}

// ---- CosineAnnealingLR ----

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min)
    : LRScheduler(opt), t_max_(t_max), eta_min_(eta_min), base_lr_(opt.lr()) {
  ENGINE_CHECK(t_max >= 1, "CosineAnnealingLR: T_max must be >= 1, got ", t_max);
  ENGINE_CHECK(std::isfinite(eta_min) && eta_min >= 0,
               "CosineAnnealingLR: eta_min must be finite and >= 0, got ", eta_min);
}

void CosineAnnealingLR::step() {
  constexpr double pi = std::numbers::pi;
  ++last_epoch_;
  const double e = static_cast<double>(last_epoch_), t = static_cast<double>(t_max_);
  const double lr = opt_.lr();
  double next;
  if ((last_epoch_ - 1 - t_max_) % (2 * t_max_) == 0) {
    // One epoch past a trough, where the ratio below would divide by 1 + cos(pi) = 0.
    next = lr + (base_lr_ - eta_min_) * (1 - std::cos(pi / t)) / 2;
  } else {
    next =
        (1 + std::cos(pi * e / t)) / (1 + std::cos(pi * (e - 1) / t)) * (lr - eta_min_) + eta_min_;
  }
  // Rounding can take the trough a hair below zero when eta_min is 0.
  opt_.set_lr(std::max(next, 0.0));
}

std::string CosineAnnealingLR::to_json() const {
  return json{{"type", name()},
              {"T_max", t_max_},
              {"eta_min", eta_min_},
              {"base_lr", base_lr_},
              {"last_epoch", last_epoch_}}
      .dump();
}

void CosineAnnealingLR::from_json(const std::string& s) {
  Reader r(name(), s);
  CosineAnnealingLR check(opt_, r.integer("T_max"), r.number("eta_min"));
  const double base_lr = r.number("base_lr");
  ENGINE_CHECK(std::isfinite(base_lr) && base_lr >= 0, name(), ".from_json: base_lr ", base_lr,
               " is not a learning rate");
  const int64_t last_epoch = r.integer("last_epoch");
  check_epoch(name(), last_epoch);
  t_max_ = check.t_max_;
  eta_min_ = check.eta_min_;
  base_lr_ = base_lr;
  last_epoch_ = last_epoch;
}

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& opt, const PlateauOptions& options)
    : LRScheduler(opt), o_(options) {
  validate(o_);
  best_ = (o_.mode == "min" ? 1 : -1) * std::numeric_limits<double>::infinity();
}

void ReduceLROnPlateau::validate(const PlateauOptions& o) const {
  ENGINE_CHECK(o.mode == "min" || o.mode == "max", name(), ": mode '", o.mode,
               "' is unknown (min or max)");
  ENGINE_CHECK(o.threshold_mode == "rel" || o.threshold_mode == "abs", name(), ": threshold_mode '",
               o.threshold_mode, "' is unknown (rel or abs)");
  ENGINE_CHECK(o.factor > 0 && o.factor < 1, name(), ": factor must be in (0, 1), got ", o.factor);
  ENGINE_CHECK(o.patience >= 0, name(), ": patience must be >= 0, got ", o.patience);
  ENGINE_CHECK(o.cooldown >= 0, name(), ": cooldown must be >= 0, got ", o.cooldown);
  ENGINE_CHECK(std::isfinite(o.threshold) && o.threshold >= 0, name(),
               ": threshold must be finite and >= 0, got ", o.threshold);
  ENGINE_CHECK(std::isfinite(o.min_lr) && o.min_lr >= 0, name(),
               ": min_lr must be finite and >= 0, got ", o.min_lr);
  ENGINE_CHECK(std::isfinite(o.eps) && o.eps >= 0, name(), ": eps must be finite and >= 0, got ",
               o.eps);
}

bool ReduceLROnPlateau::is_better(double a) const {
  const bool rel = o_.threshold_mode == "rel";
  if (o_.mode == "min") return rel ? a < best_ * (1. - o_.threshold) : a < best_ - o_.threshold;
  return rel ? a > best_ * (o_.threshold + 1.) : a > best_ + o_.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs during cooldown are not counted
  }
  if (num_bad_epochs_ > o_.patience) {
    const double old_lr = opt_.lr();
    const double new_lr = std::max(old_lr * o_.factor, o_.min_lr);
    if (old_lr - new_lr > o_.eps) opt_.set_lr(new_lr);
    cooldown_counter_ = o_.cooldown;
    num_bad_epochs_ = 0;
  }
}

std::string ReduceLROnPlateau::to_json() const {
  return json{{"type", name()},
              {"mode", o_.mode},
              {"factor", o_.factor},
              {"patience", o_.patience},
              {"threshold", o_.threshold},
              {"threshold_mode", o_.threshold_mode},
              {"cooldown", o_.cooldown},
              {"min_lr", o_.min_lr},
              {"eps", o_.eps},
              {"best", encode_double(best_)},
              {"num_bad_epochs", num_bad_epochs_},
              {"cooldown_counter", cooldown_counter_},
              {"last_epoch", last_epoch_}}
      .dump();
}

void ReduceLROnPlateau::from_json(const std::string& s) {
  Reader r(name(), s);
  PlateauOptions o;
  o.mode = r.string("mode");
  o.factor = r.number("factor");
  o.patience = r.integer("patience");
  o.threshold = r.number("threshold");
  o.threshold_mode = r.string("threshold_mode");
  o.cooldown = r.integer("cooldown");
  o.min_lr = r.number("min_lr");
  o.eps = r.number("eps");
  validate(o);
  const double best = r.number("best");
  const int64_t bad = r.integer("num_bad_epochs"), cooldown = r.integer("cooldown_counter");
  const int64_t last_epoch = r.integer("last_epoch");
  ENGINE_CHECK(bad >= 0 && cooldown >= 0, name(), ".from_json: num_bad_epochs ", bad,
               " and cooldown_counter ", cooldown, " must be >= 0");
  check_epoch(name(), last_epoch);
  o_ = o;
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  last_epoch_ = last_epoch;
}

// ---- WindowedPlateau ----

WindowedPlateau::WindowedPlateau(Optimizer& opt, int64_t window, const PlateauOptions& options)
    : LRScheduler(opt), plateau_(opt, options), window_(window) {
  ENGINE_CHECK(window >= 1, name(), ": window must be >= 1 batch, got ", window);
}

void WindowedPlateau::batch_end(double loss) {
  sum_ += loss;
  if (++count_ < window_) return;
  // running_loss / 50 in the study's loop: the sum divided, not a running mean.
  plateau_.step(sum_ / static_cast<double>(window_));
  last_epoch_ = plateau_.last_epoch();
  sum_ = 0;
  count_ = 0;
}

void WindowedPlateau::epoch_end(double) {
  sum_ = 0;
  count_ = 0;
}

std::string WindowedPlateau::to_json() const {
  return json{{"type", name()},
              {"window", window_},
              {"sum", encode_double(sum_)},
              {"count", count_},
              {"plateau", json::parse(plateau_.to_json())}}
      .dump();
}

void WindowedPlateau::from_json(const std::string& s) {
  Reader r(name(), s);
  const int64_t window = r.integer("window"), count = r.integer("count");
  const double sum = r.number("sum");
  ENGINE_CHECK(window >= 1 && count >= 0 && count < window, name(), ".from_json: count ", count,
               " and window ", window, " must satisfy 0 <= count < window");
  ENGINE_CHECK(std::isfinite(sum), name(), ".from_json: the window's loss sum ", sum,
               " is not finite");
  ENGINE_CHECK(r.at("plateau").is_object(), name(), ".from_json: 'plateau' is not an object");
  plateau_.from_json(r.at("plateau").dump());  // throws changing nothing, so check it last
  window_ = window;
  count_ = count;
  sum_ = sum;
  last_epoch_ = plateau_.last_epoch();
}

}  // namespace engine
