// Optimizer bookkeeping (which parameters step, their state, state dicts) and the four update
// rules' hyper-parameter handling; the arithmetic is in the op table's fused update kernels.
#include "engine/optim.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <variant>

#include "engine/autograd.h"
#include "engine/op_table.h"

namespace engine {

using nlohmann::json;

namespace {

constexpr const char* kMetaKey = "optimizer";

double json_number(const json& j, const char* key, const char* opt) {
  auto it = j.find(key);
  ENGINE_CHECK(it != j.end() && it->is_number(), opt, ".load_state_dict: hyper-parameter '", key,
               "' is missing or not a number in the saved state");
  return it->get<double>();
}

bool json_bool(const json& j, const char* key, const char* opt) {
  auto it = j.find(key);
  ENGINE_CHECK(it != j.end() && it->is_boolean(), opt, ".load_state_dict: hyper-parameter '", key,
               "' is missing or not a boolean in the saved state");
  return it->get<bool>();
}

// An options struct with the live lr (the base class owns it; the struct's copy is stale).
template <class Options>
Options with_lr(Options o, double lr) {
  o.lr = lr;
  return o;
}

std::string state_key(const std::string& param, const std::string& buffer) {
  return "state." + param + "." + buffer;
}

}  // namespace

// ---- Optimizer ----

Optimizer::Optimizer(const char* type, NamedParams params, double lr)
    : lr_(lr), params_(std::move(params)) {
  ENGINE_CHECK(!params_.empty(), type, ": got an empty parameter list");
  std::set<std::string> names;
  for (const auto& [n, p] : params_) {
    ENGINE_CHECK(p.defined(), type, ": parameter '", n, "' is an undefined tensor");
    ENGINE_CHECK(p.dtype() == DType::F32, type, ": parameter '", n, "' is ", dtype_name(p.dtype()),
                 ", only f32 parameters can be optimized");
    ENGINE_CHECK(names.insert(n).second, type, ": parameter name '", n,
                 "' appears twice (the names key the optimizer state)");
  }
  state_.resize(params_.size());
}

void Optimizer::check_hyper(bool ok, const char* what, double value, const char* rule) const {
  ENGINE_CHECK(ok, name(), ": invalid ", what, " ", value, " (", rule, ")");
}

json Optimizer::hyper_to_json() const {
  json j = json::object();
  // hyper_params() only hands out the fields' addresses; nothing is written through them here.
  for (const HyperParam& h : const_cast<Optimizer*>(this)->hyper_params()) {
    std::visit([&](auto* field) { j[h.name] = *field; }, h.field);
  }
  return j;
}

void Optimizer::hyper_from_json(const json& j) {
  const std::vector<HyperParam> params = hyper_params();
  // Every value is read (and checked for presence and type) before any is assigned.
  json values = json::object();
  for (const HyperParam& h : params) {
    values[h.name] = std::holds_alternative<bool*>(h.field) ? json(json_bool(j, h.name, name()))
                                                            : json(json_number(j, h.name, name()));
  }
  const json old = hyper_to_json();
  auto assign = [&params](const json& from) {
    for (const HyperParam& h : params) {
      std::visit(
          [&](auto* field) { *field = from.at(h.name).get<std::decay_t<decltype(*field)>>(); },
          h.field);
    }
  };
  assign(values);
  try {
    validate_hyper();
  } catch (...) {
    assign(old);
    throw;
  }
}

void Optimizer::set_lr(double lr) {
  check_hyper(std::isfinite(lr) && lr >= 0, "learning rate", lr, "must be finite and >= 0");
  lr_ = lr;
}

void Optimizer::step() {
  autograd::NoGradGuard no_grad;
  const std::vector<std::string> buffers = buffer_names();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& [pname, p] = params_[i];
    if (!p.requires_grad()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    ENGINE_CHECK(g.device() == p.device() && g.dtype() == DType::F32, name(),
                 ".step: gradient of '", pname, "' is ", g.str(), " but the parameter is ",
                 p.str());
    ParamState& s = state_[i];
    if (s.step == 0) {
      for (const auto& b : buffers) s.buffers[b] = Tensor::zeros(p.shape(), DType::F32, p.device());
    }
    ++s.step;
    update(p, g, s);
  }
}

void Optimizer::zero_grad() {
  for (auto& [n, p] : params_) p.zero_grad();
}

TensorMap Optimizer::state_dict(Metadata& metadata) const {
  TensorMap out;
  json steps = json::object();
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamState& s = state_[i];
    if (s.step == 0) continue;
    steps[params_[i].first] = s.step;
    for (const auto& [b, t] : s.buffers) out.emplace(state_key(params_[i].first, b), t);
  }
  json j;
  j["type"] = name();
  j["lr"] = lr_;
  j["hyper"] = hyper_to_json();
  j["steps"] = steps;
  metadata[kMetaKey] = j.dump();
  return out;
}

void Optimizer::load_state_dict(const TensorMap& tensors, const Metadata& metadata) {
  const std::string op = std::string(name()) + ".load_state_dict";
  auto mit = metadata.find(kMetaKey);
  ENGINE_CHECK(mit != metadata.end(), op, ": metadata has no '", kMetaKey, "' entry");
  json j;
  try {
    j = json::parse(mit->second);
  } catch (const json::exception& e) {
    throw Error(op + ": metadata '" + kMetaKey + "' is not valid JSON: " + e.what());
  }
  ENGINE_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), op, ": metadata '",
               kMetaKey, "' has no optimizer type");
  const std::string type = j["type"].get<std::string>();
  ENGINE_CHECK(type == name(), op, ": the saved state is for ", type, ", not ", name());
  ENGINE_CHECK(j.contains("hyper") && j["hyper"].is_object(), op,
               ": the saved state has no hyper-parameters");
  ENGINE_CHECK(j.contains("steps") && j["steps"].is_object(), op,
               ": the saved state has no step counts");
  const double lr = json_number(j, "lr", name());
  check_hyper(std::isfinite(lr) && lr >= 0, "learning rate", lr, "must be finite and >= 0");

  // The buffers a parameter needs depend on the loaded hyper-parameters (momentum, centered),
  // so assign them first and put the old ones back if anything below fails.
  const json old_hyper = hyper_to_json();
  hyper_from_json(j["hyper"]);
  try {
    const std::vector<std::string> buffers = buffer_names();
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < params_.size(); ++i) index[params_[i].first] = i;

    std::vector<std::string> problems;
    std::vector<ParamState> state(params_.size());
    std::set<std::string> expected;
    for (const auto& el : j["steps"].items()) {
      const std::string& pname = el.key();
      const json& count = el.value();
      auto it = index.find(pname);
      if (it == index.end()) {
        problems.push_back("state for unknown parameter '" + pname + "'");
        continue;
      }
      if (!count.is_number_integer() || count.get<int64_t>() < 1) {
        problems.push_back("step count of '" + pname + "' is " + count.dump() +
                           ", not a positive integer");
        continue;
      }
      const Tensor& p = params_[it->second].second;
      ParamState& s = state[it->second];
      s.step = count.get<int64_t>();
      for (const auto& b : buffers) {
        const std::string key = state_key(pname, b);
        expected.insert(key);
        auto t = tensors.find(key);
        if (t == tensors.end()) {
          problems.push_back("missing " + key);
        } else if (t->second.shape() != p.shape() || t->second.dtype() != DType::F32) {
          problems.push_back(key + " is " + t->second.str() + " but parameter '" + pname + "' is " +
                             shape_str(p.shape()) + " f32");
        } else {
          Tensor copy = Tensor::empty(p.shape(), DType::F32, p.device());
          copy.copy_(t->second);
          s.buffers[b] = copy;
        }
      }
    }
    for (const auto& [key, t] : tensors) {
      if (!expected.count(key)) problems.push_back("unexpected " + key);
    }
    if (!problems.empty()) {
      std::string msg = op + ": " + std::to_string(problems.size()) + " problem(s): ";
      for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
      throw Error(msg);
    }
    state_ = std::move(state);
    lr_ = lr;
  } catch (...) {
    hyper_from_json(old_hyper);
    throw;
  }
}

// ---- SGD ----

SGD::SGD(NamedParams params, double lr, const SgdOptions& options)
    : Optimizer("SGD", std::move(params), lr), o_(options) {
  set_lr(lr);
  validate(o_);
}

void SGD::validate(const SgdOptions& o) const {
  check_hyper(std::isfinite(o.momentum) && o.momentum >= 0, "momentum", o.momentum, "must be >= 0");
  check_hyper(std::isfinite(o.dampening), "dampening", o.dampening, "must be finite");
  check_hyper(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "weight_decay", o.weight_decay,
              "must be >= 0");
  ENGINE_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), name(),
               ": Nesterov momentum requires a momentum > 0 and zero dampening (momentum ",
               o.momentum, ", dampening ", o.dampening, ")");
}

std::vector<std::string> SGD::buffer_names() const {
  if (o_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void SGD::update(Tensor& param, const Tensor& grad, ParamState& state) {
  const SgdHyper h{lr_, o_.momentum, o_.dampening, o_.weight_decay, o_.nesterov, state.step == 1};
  Tensor buf = o_.momentum == 0 ? Tensor() : state.buffers.at("momentum_buffer");
  auto kernel = ENGINE_KERNEL(param.device(), sgd_update);
  kernel(param, grad, buf, h);
}

std::vector<Optimizer::HyperParam> SGD::hyper_params() {
  return {{"momentum", &o_.momentum},
          {"dampening", &o_.dampening},
          {"weight_decay", &o_.weight_decay},
          {"nesterov", &o_.nesterov}};
}

// ---- RMSprop ----

RMSprop::RMSprop(NamedParams params, const RmspropOptions& options)
    : Optimizer("RMSprop", std::move(params), options.lr), o_(options) {
  set_lr(options.lr);
  validate(o_);
}

RmspropOptions RMSprop::options() const { return with_lr(o_, lr_); }

void RMSprop::validate(const RmspropOptions& o) const {
  // PyTorch accepts alpha >= 1, but then square_avg never leaves zero and every update is
  // g / eps: surely a typo for 0.99 or 0.9.
  check_hyper(o.alpha >= 0 && o.alpha < 1, "alpha", o.alpha, "must be in [0, 1)");
  check_hyper(std::isfinite(o.eps) && o.eps >= 0, "eps", o.eps, "must be >= 0");
  check_hyper(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "weight_decay", o.weight_decay,
              "must be >= 0");
  check_hyper(std::isfinite(o.momentum) && o.momentum >= 0, "momentum", o.momentum, "must be >= 0");
}

std::vector<std::string> RMSprop::buffer_names() const {
  std::vector<std::string> b{"square_avg"};
  if (o_.momentum > 0) b.push_back("momentum_buffer");
  if (o_.centered) b.push_back("grad_avg");
  return b;
}

void RMSprop::update(Tensor& param, const Tensor& grad, ParamState& state) {
  const RmspropHyper h{lr_, o_.alpha, o_.eps, o_.weight_decay, o_.momentum, o_.centered};
  Tensor grad_avg = o_.centered ? state.buffers.at("grad_avg") : Tensor();
  Tensor buf = o_.momentum > 0 ? state.buffers.at("momentum_buffer") : Tensor();
  auto kernel = ENGINE_KERNEL(param.device(), rmsprop_update);
  kernel(param, grad, state.buffers.at("square_avg"), grad_avg, buf, h);
}

std::vector<Optimizer::HyperParam> RMSprop::hyper_params() {
  return {{"alpha", &o_.alpha},
          {"eps", &o_.eps},
          {"weight_decay", &o_.weight_decay},
          {"momentum", &o_.momentum},
          {"centered", &o_.centered}};
}

// ---- Adam / AdamW ----

Adam::Adam(NamedParams params, const AdamOptions& options)
    : Adam(std::move(params), options, false) {}

Adam::Adam(NamedParams params, const AdamOptions& options, bool decoupled)
    : Optimizer(decoupled ? "AdamW" : "Adam", std::move(params), options.lr),
      o_(options),
      decoupled_(decoupled) {
  set_lr(options.lr);
  validate(o_);
}

AdamW::AdamW(NamedParams params, const AdamWOptions& o)
    : Adam(std::move(params), AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}, true) {}

AdamOptions Adam::options() const { return with_lr(o_, lr_); }

void Adam::validate(const AdamOptions& o) const {
  check_hyper(o.beta1 >= 0 && o.beta1 < 1, "beta1", o.beta1, "must be in [0, 1)");
  check_hyper(o.beta2 >= 0 && o.beta2 < 1, "beta2", o.beta2, "must be in [0, 1)");
  check_hyper(std::isfinite(o.eps) && o.eps >= 0, "eps", o.eps, "must be >= 0");
  check_hyper(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "weight_decay", o.weight_decay,
              "must be >= 0");
}

std::vector<std::string> Adam::buffer_names() const { return {"exp_avg", "exp_avg_sq"}; }

void Adam::update(Tensor& param, const Tensor& grad, ParamState& state) {
  const AdamHyper h{lr_, o_.beta1, o_.beta2, o_.eps, o_.weight_decay, decoupled_, state.step};
  auto kernel = ENGINE_KERNEL(param.device(), adam_update);
  kernel(param, grad, state.buffers.at("exp_avg"), state.buffers.at("exp_avg_sq"), h);
}

std::vector<Optimizer::HyperParam> Adam::hyper_params() {
  return {{"beta1", &o_.beta1},
          {"beta2", &o_.beta2},
          {"eps", &o_.eps},
          {"weight_decay", &o_.weight_decay}};
}

// ---- gradient clipping ----

double clip_grad_norm(const NamedParams& params, double max_norm, bool error_if_nonfinite) {
  ENGINE_CHECK(std::isfinite(max_norm) && max_norm > 0,
               "clip_grad_norm: max_norm must be finite and > 0, got ", max_norm);
  autograd::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& [n, p] : params) {
    Tensor g = p.grad();
    if (g.defined()) sum += ENGINE_KERNEL(g.device(), sum_squares)(g);
  }
  const double total = std::sqrt(sum);
  ENGINE_CHECK(!error_if_nonfinite || std::isfinite(total),
               "clip_grad_norm: the total norm of the gradients is ", total,
               ", so they cannot be clipped");
  const double coef = max_norm / (total + 1e-6);
  // PyTorch multiplies by min(coef, 1) unconditionally; scaling by 1 changes nothing, so skip it.
  if (coef < 1 || std::isnan(coef)) {
    for (const auto& [n, p] : params) {
      Tensor g = p.grad();
      if (g.defined()) ENGINE_KERNEL(g.device(), scale_inplace)(g, static_cast<float>(coef));
    }
  }
  return total;
}

}  // namespace engine
