// Module tree walks, state dicts, device moves and the summary table.
#include "layers/module.h"

#include <atomic>
#include <cstdio>
#include <set>
#include <sstream>

#include "engine/autograd.h"

namespace engine {
namespace {
// Set while summary() runs: every module call appends its output here.
std::vector<std::pair<Module*, Shape>>* g_summary_rows = nullptr;
std::atomic<uint64_t> g_state_version{0};

// BatchNorm's counter is a 0-d I64 in PyTorch's state_dict, but some exporters write it as [1].
bool is_counter_alias(const Tensor& file, const Tensor& mine) {
  return mine.dtype() == DType::I64 && file.dtype() == DType::I64 && mine.numel() == 1 &&
         file.numel() == 1 && mine.dim() <= 1 && file.dim() <= 1;
}
}  // namespace

uint64_t Module::state_version() { return g_state_version.load(); }
void Module::touch_state() { ++g_state_version; }
bool Module::summary_active() { return g_summary_rows != nullptr; }

Tensor Module::operator()(const Tensor& x) {
  Tensor y;
  if (backend_) {
    BackendScope scope(*backend_);
    y = forward(x);
  } else {
    y = forward(x);
  }
  if (g_summary_rows) g_summary_rows->emplace_back(this, y.shape());
  return y;
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  ENGINE_CHECK(t.defined(), type_name(), ": parameter '", name, "' is undefined");
  if (t.is_leaf() && !t.requires_grad()) t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  ENGINE_CHECK(t.defined(), type_name(), ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, NamedTensors& out, bool params) const {
  for (const auto& [n, t] : params ? params_ : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, c] : children_) c->collect(prefix + n + ".", out, params);
}

Module::NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out, true);
  return out;
}

Module::NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", out, false);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (auto& [n, c] : children_)
    for (auto& [cn, cm] : c->named_modules()) out.emplace_back(cn.empty() ? n : n + "." + cn, cm);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  touch_state();
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::set_requires_grad(bool on) {
  touch_state();
  for (auto& [n, t] : named_parameters()) {
    Tensor h = t;
    h.set_requires_grad(on);
    if (!on) h.zero_grad();
  }
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) {
    Tensor h = t;
    h.zero_grad();
  }
}

TensorMap Module::state_dict() const {
  TensorMap out;
  for (auto& [n, t] : named_parameters()) out.emplace(n, t);
  for (auto& [n, t] : named_buffers()) out.emplace(n, t);
  return out;
}

void Module::load_state_dict(const TensorMap& state, bool strict) {
  TensorMap mine = state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  for (auto& [n, t] : mine) {
    auto it = state.find(n);
    if (it == state.end()) {
      missing.push_back(n);
    } else if (it->second.shape() != t.shape() && !is_counter_alias(it->second, t)) {
      mismatched.push_back(n + " (checkpoint " + shape_str(it->second.shape()) + ", model " +
                           shape_str(t.shape()) + ")");
    } else if (it->second.dtype() != t.dtype()) {
      mismatched.push_back(n + " (checkpoint " + dtype_name(it->second.dtype()) + ", model " +
                           dtype_name(t.dtype()) + ")");
    }
  }
  for (auto& [n, t] : state)
    if (!mine.count(n)) unexpected.push_back(n);
  // A mis-shaped key is an error even when not strict: loading it cannot mean anything.
  if ((strict && (!missing.empty() || !unexpected.empty())) || !mismatched.empty()) {
    std::ostringstream os;
    os << "load_state_dict: state dict does not match " << type_name();
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "; " << v.size() << " " << what << ":";
      for (auto& s : v) os << " " << s;
    };
    if (strict) {
      list("missing keys", missing);
      list("unexpected keys", unexpected);
    }
    list("mis-shaped keys", mismatched);
    throw Error(os.str());
  }
  autograd::NoGradGuard no_grad;
  for (auto& [n, t] : mine) {
    auto it = state.find(n);
    if (it == state.end()) continue;
    Tensor dst = t;
    if (it->second.shape() != t.shape()) {  // the counter alias: one int64 either way
      dst.data<int64_t>()[0] = it->second.to(Device::cpu()).data<int64_t>()[0];
      continue;
    }
    dst.copy_(it->second);
  }
  touch_state();
}

void Module::to(Device d) {
  touch_state();
  auto move = [&](Tensor t) {
    if (t.device() == d) return;
    Tensor moved = t.to(d);
    t.impl().storage = moved.impl().storage;
    t.impl().offset = 0;
    t.impl().grad.reset();
  };
  for (auto& [n, t] : named_parameters()) move(t);
  // Integer scalars (BatchNorm's num_batches_tracked) are bookkeeping that no kernel reads and the
  // layer updates on the host each step: they stay in host memory, so counting costs no copy.
  for (auto& [n, t] : named_buffers())
    if (!(t.dtype() == DType::I64 && t.dim() == 0)) move(t);
}

std::string summary(Module& model, const Shape& input_shape) {
  std::vector<std::pair<Module*, Shape>> rows;
  {
    autograd::NoGradGuard no_grad;
    bool was_training = model.is_training();
    model.eval();
    g_summary_rows = &rows;
    try {
      model(Tensor::zeros(input_shape));
    } catch (...) {
      g_summary_rows = nullptr;
      model.train(was_training);
      throw;
    }
    g_summary_rows = nullptr;
    model.train(was_training);
  }
  std::map<Module*, std::string> names;
  std::set<Module*> parents;
  for (auto& [n, m] : model.named_modules()) names[m] = n;
  std::ostringstream os;
  char line[160];
  const char* rule =
      "--------------------------------------------------------------------------------\n";
  os << rule;
  std::snprintf(line, sizeof line, "%-44s %-22s %12s\n", "Layer (type)", "Output Shape", "Param #");
  os << line << rule;
  for (auto& [m, shape] : rows) {
    if (m == &model) continue;
    // Containers (Sequential, blocks) would repeat their children's rows; print leaves only.
    if (m->named_modules().size() > 1) continue;
    int64_t params = m->num_parameters();
    std::string label = names.count(m) ? names[m] : "?";
    label += " (" + m->type_name() + ")";
    std::snprintf(line, sizeof line, "%-44s %-22s %12lld\n", label.c_str(),
                  shape_str(shape).c_str(), static_cast<long long>(params));
    os << line;
  }
  os << rule;
  int64_t total = model.num_parameters(), trainable = model.num_parameters(true);
  os << "Total params: " << total << "\nTrainable params: " << trainable
     << "\nNon-trainable params: " << total - trainable << "\n";
  os << "Input shape: " << shape_str(input_shape) << "\n" << rule;
  return os.str();
}

}  // namespace engine
