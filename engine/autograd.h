// Define-by-run reverse-mode autograd. Each op that has an input requiring grad records one Node
// on its output: the nodes that its inputs' gradients flow into (`next`), and a backward function
// that maps the output's gradient to its inputs' gradients. Tensor::backward walks the nodes in
// topological order, summing gradients that meet, and accumulates into leaves' .grad.
//
// Frozen parameters (requires_grad=false) and inputs never create edges, so an op whose inputs
// all need no gradient records nothing and its whole subgraph is never visited in backward:
// a frozen backbone costs its forward pass only. stats().nodes_run counts what backward ran.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace engine {

// grad_output -> one gradient per input. `needs[i]` says whether input i wants one; a backward
// function may leave the others undefined (and should not compute them).
using BackwardFn =
    std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs)>;

struct Node {
  std::string name;                          // the op, for messages and graph dumps
  std::vector<std::shared_ptr<Node>> next;   // per input; null where no gradient is wanted
  BackwardFn backward;                       // empty for leaf accumulators
  std::weak_ptr<TensorImpl> leaf;            // set for a leaf's accumulator node
  Shape output_shape;                        // to check the gradient that arrives
  std::optional<Backend> backend;            // BackendScope active at record time, for backward
};

namespace autograd {

bool grad_enabled();

// While alive, ops record nothing (inference, optimizer updates, running-stat updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and at least one of the inputs requires grad: only then does an op
// record a node (and save tensors for backward).
bool needs_record(std::initializer_list<const Tensor*> inputs);
bool needs_record(const std::vector<Tensor>& inputs);

// Attach a node to `output` whose inputs are `inputs`. Call only when needs_record() is true.
// Save outputs in the closure with detach(), never the output handle itself (that would be a
// reference cycle output -> node -> output).
void record(const char* name, Tensor& output, std::initializer_list<const Tensor*> inputs,
            BackwardFn fn);
void record(const char* name, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn);

struct Stats {
  uint64_t nodes_run = 0;  // backward functions executed since reset
};
Stats& stats();

void run_backward(const Tensor& root, const Tensor& grad_output);

}  // namespace autograd
}  // namespace engine
