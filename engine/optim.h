// Optimizers (SGD, RMSprop, Adam, AdamW) with PyTorch 1.13's update rules, their state as
// safetensors-ready tensors plus JSON metadata, and global-norm gradient clipping.
//
// The per-tensor arithmetic lives in the fused kernels of the op table (sgd_update,
// rmsprop_update, adam_update), so a CUDA backend only has to fill those slots. This file keeps
// the bookkeeping PyTorch's Optimizer does in Python: which parameters take part in a step, the
// per-parameter state created on a parameter's first update, and step counts.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "engine/tensor.h"
#include "engine/tensor_io.h"

namespace engine {

// Parameters by name; the names key the optimizer state, as PyTorch's state_dict keys do.
using NamedParams = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that requires grad and has a gradient. The others are
  // skipped and get no state, as torch.optim skips `p.grad is None`: a parameter that misses
  // steps keeps its own (smaller) step count for Adam's bias correction.
  void step();
  // Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  const NamedParams& params() const { return params_; }
  virtual const char* name() const = 0;

  // The state tensors, keyed "state.<param name>.<buffer>" with PyTorch's buffer names
  // (momentum_buffer, square_avg, grad_avg, exp_avg, exp_avg_sq), for parameters updated at
  // least once. Writes metadata["optimizer"]: JSON with the type, the hyper-parameters, the
  // learning rate and the per-parameter step counts. The tensors share storage with the live
  // state (no copy): save them before the next step().
  TensorMap state_dict(Metadata& metadata) const;
  // Restores what state_dict wrote, hyper-parameters and learning rate included (as PyTorch's
  // load_state_dict restores param_groups). Throws, changing nothing, when the type differs or
  // when any entry is missing, unexpected, mis-shaped or names an unknown parameter (all of them
  // are listed). Tensors are copied onto each parameter's device.
  void load_state_dict(const TensorMap& tensors, const Metadata& metadata);

 protected:
  // `type` is the subclass's name() for messages (virtual calls do not reach it here).
  Optimizer(const char* type, NamedParams params, double lr);

  // One parameter's state: its number of updates and its buffers (zeros when created).
  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> buffers;
  };

  // The buffers the current hyper-parameters need, created at a parameter's first update.
  virtual std::vector<std::string> buffer_names() const = 0;
  // Updates one parameter; state.step already counts this update.
  virtual void update(Tensor& param, const Tensor& grad, ParamState& state) = 0;
  // One hyper-parameter: its name in the saved state and the subclass's field that holds it.
  struct HyperParam {
    const char* name;
    std::variant<double*, bool*> field;
  };
  // The hyper-parameters besides lr, pointing into the subclass's options: the one list that
  // state_dict writes and load_state_dict reads.
  virtual std::vector<HyperParam> hyper_params() = 0;
  // Throws naming the first invalid hyper-parameter.
  virtual void validate_hyper() const = 0;

  // "<name>: invalid <what> <value> (<rule>)" when !ok.
  void check_hyper(bool ok, const char* what, double value, const char* rule) const;
  nlohmann::json hyper_to_json() const;
  // Assigns and validates the hyper-parameters in j (every one must be present); on an error
  // throws with the old ones back in place.
  void hyper_from_json(const nlohmann::json& j);

  double lr_;

 private:
  NamedParams params_;
  std::vector<ParamState> state_;  // parallel to params_
};

struct SgdOptions {
  double momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0
};

class SGD : public Optimizer {
 public:
  SGD(NamedParams params, double lr, const SgdOptions& options = {});
  const char* name() const override { return "SGD"; }
  const SgdOptions& options() const { return o_; }

 protected:
  std::vector<std::string> buffer_names() const override;
  void update(Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<HyperParam> hyper_params() override;
  void validate_hyper() const override { validate(o_); }

 private:
  void validate(const SgdOptions& o) const;
  SgdOptions o_;
};

struct RmspropOptions {
  double lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
  bool centered = false;
};

class RMSprop : public Optimizer {
 public:
  RMSprop(NamedParams params, const RmspropOptions& options = {});
  const char* name() const override { return "RMSprop"; }
  RmspropOptions options() const;

 protected:
  std::vector<std::string> buffer_names() const override;
  void update(Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<HyperParam> hyper_params() override;
  void validate_hyper() const override { validate(o_); }

 private:
  void validate(const RmspropOptions& o) const;
  RmspropOptions o_;  // o_.lr is stale after construction: the base class owns lr
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};
// AdamW's defaults differ from Adam's in weight_decay only.
struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

// Adam, and AdamW (decoupled weight decay: p *= 1 - lr * wd before the Adam step).
class Adam : public Optimizer {
 public:
  Adam(NamedParams params, const AdamOptions& options = {});
  const char* name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  AdamOptions options() const;

 protected:
  Adam(NamedParams params, const AdamOptions& options, bool decoupled);
  std::vector<std::string> buffer_names() const override;
  void update(Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<HyperParam> hyper_params() override;
  void validate_hyper() const override { validate(o_); }

 private:
  void validate(const AdamOptions& o) const;
  AdamOptions o_;  // o_.lr is stale after construction: the base class owns lr
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(NamedParams params, const AdamWOptions& options = {});
};

// torch.nn.utils.clip_grad_norm_ with norm_type 2: the L2 norm of all gradients taken together
// (parameters without a gradient are ignored); when max_norm / (norm + 1e-6) < 1 every gradient
// is scaled by it. Returns the norm before clipping. A non-finite norm throws when
// error_if_nonfinite, else (PyTorch's default) the gradients are scaled by the resulting NaN/0
// and the caller should check the returned value.
double clip_grad_norm(const NamedParams& params, double max_norm, bool error_if_nonfinite = false);

}  // namespace engine
