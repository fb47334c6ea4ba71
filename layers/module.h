// Module: the unit models are built from. A module owns named parameters (trainable tensors),
// buffers (state such as batch-norm running statistics) and child modules; the dotted paths of
// these names are exactly PyTorch's state_dict keys ("seq1.0.weight", "seq1.1.running_mean"),
// so weights move between the engine and PyTorch as they are.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "engine/tensor_io.h"

namespace engine {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Runs forward() under this module's backend override (if any) and reports the output to an
  // active summary.
  Tensor operator()(const Tensor& x);
  virtual Tensor forward(const Tensor& x) = 0;
  virtual std::string type_name() const = 0;
  virtual std::string extra_repr() const { return ""; }

  // Everything below walks the tree in registration order.
  using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, Module*>> named_modules();  // "" is this module
  std::vector<Tensor> parameters() const;
  int64_t num_parameters(bool trainable_only = false) const;

  // train() also reaches every child; eval() is train(false).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Frozen parameters get requires_grad=false: no gradient, and no backward through the parts
  // of the graph that depend on nothing else.
  void freeze() { set_requires_grad(false); }
  void unfreeze() { set_requires_grad(true); }
  void set_requires_grad(bool on);
  void zero_grad();

  // Parameters and buffers, keyed by their PyTorch state_dict names. The tensors are shared
  // with the module (not copies).
  TensorMap state_dict() const;
  // Copies values into the existing tensors. With strict, any missing, unexpected or
  // mis-shaped key is an error listing every one of them; without, only matching keys load.
  void load_state_dict(const TensorMap& state, bool strict = true);

  // Per-layer backend override for CUDA tensors (Caffe's engine: CUDNN|CAFFE); children inherit
  // it unless they set their own.
  void set_backend(std::optional<Backend> b) { backend_ = b; }
  const std::optional<Backend>& backend() const { return backend_; }

  // A process-wide counter that moves whenever the engine may have changed a module's tensors
  // other than by an optimizer step on trainable parameters: load_state_dict, to(), train()/
  // eval(), freezing. Caches derived from frozen weights (layers/fused.h) compare it.
  static uint64_t state_version();
  static void touch_state();  // for code that writes into parameters' memory directly
  // True while summary() runs its forward pass (layers then run unfused, so each reports a row).
  static bool summary_active();

  // Moves parameters and buffers to a device (in place: the same Tensor handles are updated).
  // Integer scalar buffers (counters such as num_batches_tracked) stay in host memory.
  void to(Device d);

 protected:
  // Both return the handle to keep as a member: it aliases the registered tensor.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void collect(const std::string& prefix, NamedTensors& out, bool params) const;

  // Stored as handles: the module's own members alias the same TensorImpl.
  std::vector<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::optional<Backend> backend_;
};

using ModulePtr = std::shared_ptr<Module>;

// A model summary as torchsummary prints it: one row per leaf module with its output shape and
// parameter count, then totals. Runs one forward pass on zeros of `input_shape` without grad.
std::string summary(Module& model, const Shape& input_shape);

}  // namespace engine
