// Learning-rate schedules that set an Optimizer's lr: StepLR, CosineAnnealingLR and
// ReduceLROnPlateau once per epoch, each reproducing PyTorch 1.13's LR sequence (the same
// recursive formulas, in double, so the values agree to rounding), and WindowedPlateau, which
// steps a ReduceLROnPlateau every N training batches on their mean loss as the study's training
// loop did. A schedule's state round-trips through to_json()/from_json() (store the string in
// checkpoint Metadata), so a resumed run continues exactly where it stopped, in the middle of a
// window too; restore the optimizer's state as well, since it holds the current lr.
#pragma once
#include <cstdint>
#include <string>

#include "engine/optim.h"

namespace engine {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Call after each optimizer step with that batch's loss; read only by WindowedPlateau.
  virtual void batch_end(double /*loss*/) {}
  // Call once per epoch, after that epoch's optimizer steps. `metric` (e.g. the validation loss)
  // is read only by ReduceLROnPlateau, so a training loop can drive any schedule the same way.
  virtual void epoch_end(double metric) = 0;
  virtual const char* name() const = 0;
  // Hyper-parameters and progress, as a JSON object; from_json checks the type and the values.
  virtual std::string to_json() const = 0;
  virtual void from_json(const std::string& s) = 0;

  Optimizer& optimizer() const { return opt_; }
  int64_t last_epoch() const { return last_epoch_; }

 protected:
  explicit LRScheduler(Optimizer& opt) : opt_(opt) {}
  Optimizer& opt_;
  int64_t last_epoch_ = 0;  // PyTorch's last_epoch after the constructor's initial step
};

// lr *= gamma every step_size epochs.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  void step();
  void epoch_end(double) override { step(); }
  const char* name() const override { return "StepLR"; }
  std::string to_json() const override;
  void from_json(const std::string& s) override;

 private:
  int64_t step_size_;
  double gamma_;
};

// eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, in PyTorch's recursive
// form (each lr derived from the previous one); past T_max it rises again with period 2 T_max.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min = 0);
  void step();
  void epoch_end(double) override { step(); }
  const char* name() const override { return "CosineAnnealingLR"; }
  std::string to_json() const override;
  void from_json(const std::string& s) override;

 private:
  int64_t t_max_;
  double eta_min_, base_lr_;
};

struct PlateauOptions {
  std::string mode = "min";            // "min": lower metric is better; "max": higher is better
  double factor = 0.1;                 // new lr = max(lr * factor, min_lr)
  int64_t patience = 10;               // epochs without improvement tolerated before reducing
  double threshold = 1e-4;             // how much better counts as an improvement
  std::string threshold_mode = "rel";  // "rel": relative to the best; "abs": absolute
  int64_t cooldown = 0;  // epochs after a reduction during which bad epochs are not counted
  double min_lr = 0;
  double eps = 1e-8;  // reductions smaller than this are skipped
};

class ReduceLROnPlateau : public LRScheduler {
 public:
  explicit ReduceLROnPlateau(Optimizer& opt, const PlateauOptions& options = {});
  void step(double metric);
  void epoch_end(double metric) override { step(metric); }
  const char* name() const override { return "ReduceLROnPlateau"; }
  std::string to_json() const override;
  void from_json(const std::string& s) override;

  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }

 private:
  void validate(const PlateauOptions& o) const;
  bool is_better(double a) const;
  PlateauOptions o_;
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0;
};

// ReduceLROnPlateau stepped every `window` training batches on the mean of those batches' losses,
// the window starting afresh with each epoch, as the study's PyTorch loop does:
//   running_loss = 0.0                                  # at the start of each epoch
//   running_loss += loss.item()                         # after each batch i
//   if i % 50 == 49: scheduler.step(running_loss / 50); running_loss = 0.0
// so the batches after an epoch's last full window are dropped, and patience and cooldown count
// windows. last_epoch() counts the windows stepped. The running sum and count are part of the
// JSON state, so a run resumed in the middle of a window closes that window as the uninterrupted
// run would have.
class WindowedPlateau : public LRScheduler {
 public:
  WindowedPlateau(Optimizer& opt, int64_t window, const PlateauOptions& options = {});
  void batch_end(double loss) override;
  void epoch_end(double) override;  // drops the part window
  const char* name() const override { return "WindowedPlateau"; }
  std::string to_json() const override;
  void from_json(const std::string& s) override;

  const ReduceLROnPlateau& plateau() const { return plateau_; }
  int64_t window() const { return window_; }
  int64_t count() const { return count_; }  // batches in the current window

 private:
  ReduceLROnPlateau plateau_;
  int64_t window_, count_ = 0;
  double sum_ = 0;  // in double, as Python's running_loss
};

}  // namespace engine
