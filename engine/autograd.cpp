// The tape walk. Nodes form a DAG from the root's grad_fn back to leaf accumulators. We count, for
// every node reachable through non-null edges, how many consumers will send it a gradient; a node
// runs once all of them have (Kahn's algorithm), so each node's backward runs exactly once with
// the full sum of its output gradients.
#include "engine/autograd.h"

#include <unordered_map>

#include "engine/op_table.h"

namespace engine::autograd {
namespace {
thread_local bool t_grad_enabled = true;
Stats g_stats;

// The node a tensor's gradient flows into: its producer, or its leaf accumulator.
std::shared_ptr<Node> edge_for(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.grad_accumulator) {
    auto acc = std::make_shared<Node>();
    acc->name = "accumulate_grad";
    acc->leaf = t.impl_ptr();
    acc->output_shape = impl.shape;
    impl.grad_accumulator = acc;
  }
  return impl.grad_accumulator;
}

void attach(const char* name, Tensor& output, std::vector<std::shared_ptr<Node>> next,
            BackwardFn fn) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->next = std::move(next);
  node->backward = std::move(fn);
  node->output_shape = output.shape();
  node->backend = backend_override();
  output.impl().requires_grad = true;
  output.impl().grad_fn = std::move(node);
}

// True when nothing but `t` refers to its bytes, so they may be reused in place.
bool sole_owner(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl().storage.use_count() == 1;
}

void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
    return;
  }
  // A gradient may be shared with another consumer (or a user's tensor): add in place only into
  // memory that is ours alone.
  if (!sole_owner(slot)) slot = slot.clone();
  ENGINE_KERNEL(slot.device(), add_inplace)(slot, g, 1.0f);
}
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

bool needs_record(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->requires_grad()) return true;
  return false;
}

bool needs_record(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

void record(const char* name, Tensor& output, std::initializer_list<const Tensor*> inputs,
            BackwardFn fn) {
  std::vector<std::shared_ptr<Node>> next;
  for (const Tensor* t : inputs) next.push_back(t ? edge_for(*t) : nullptr);
  attach(name, output, std::move(next), std::move(fn));
}

void record(const char* name, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn) {
  std::vector<std::shared_ptr<Node>> next;
  for (const Tensor& t : inputs) next.push_back(edge_for(t));
  attach(name, output, std::move(next), std::move(fn));
}

Stats& stats() { return g_stats; }

void run_backward(const Tensor& root, const Tensor& grad_output) {
  ENGINE_CHECK(root.requires_grad(), "backward: tensor ", root.str(),
               " does not require grad (no input of the graph requires grad, or it was made "
               "under NoGradGuard)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    ENGINE_CHECK(root.numel() == 1, "backward: implicit gradient only for one-element tensors; ",
                 root.str(), " needs an explicit grad_output");
    seed = Tensor::full(root.shape(), 1.0f, root.device());
  }
  ENGINE_CHECK(seed.shape() == root.shape(), "backward: grad_output ", shape_str(seed.shape()),
               " does not match tensor ", shape_str(root.shape()));
  std::shared_ptr<Node> start = edge_for(root);

  // Count consumers of each node reachable from the root.
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{start.get()};
  pending[start.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& nx : n->next) {
      if (!nx) continue;
      auto [it, fresh] = pending.try_emplace(nx.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(nx.get());
    }
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[start.get()] = seed;
  std::vector<Node*> ready{start.get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g;
    if (auto it = grads.find(n); it != grads.end()) {
      g = std::move(it->second);
      grads.erase(it);
    }
    if (!n->backward) {  // leaf accumulator
      auto leaf = n->leaf.lock();
      if (leaf && g.defined()) {
        if (!leaf->grad) {
          // A leaf's .grad must be its own memory: steal the incoming tensor only when no one
          // else holds it.
          leaf->grad = (sole_owner(g) ? g : g.clone()).impl_ptr();
        } else {
          Tensor slot(leaf->grad);
          ENGINE_KERNEL(slot.device(), add_inplace)(slot, g, 1.0f);
        }
      }
      continue;
    }
    if (!g.defined()) {  // every consumer sent nothing: pass the silence on
      for (auto& nx : n->next)
        if (nx && --pending[nx.get()] == 0) ready.push_back(nx.get());
      continue;
    }
    std::vector<bool> needs(n->next.size());
    for (size_t i = 0; i < needs.size(); ++i) needs[i] = n->next[i] != nullptr;
    std::vector<Tensor> gin;
    {
      NoGradGuard no_grad;  // backward functions do not build graphs of their own
      // A layer's gradients run on the backend its forward ran on (Module::set_backend).
      std::optional<BackendScope> scope;
      if (n->backend) scope.emplace(*n->backend);
      gin = n->backward(g, needs);
    }
    ++g_stats.nodes_run;
    ENGINE_CHECK(gin.size() == n->next.size(), "backward of ", n->name, " returned ", gin.size(),
                 " gradients for ", n->next.size(), " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* nx = n->next[i].get();
      if (!nx) continue;
      if (gin[i].defined()) {
        ENGINE_CHECK(gin[i].shape() == nx->output_shape, "backward of ", n->name,
                     ": gradient for input ", i, " has shape ", shape_str(gin[i].shape()),
                     ", expected ", shape_str(nx->output_shape));
        accumulate(grads[nx], gin[i]);
      }
      if (--pending[nx] == 0) ready.push_back(nx);
    }
  }
}

}  // namespace engine::autograd
