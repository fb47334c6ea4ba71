// Activations: y = f(x) for relu, relu6, sigmoid and tanh, on tensors of any shape. Each
// derivative is a function of the output (relu: y > 0; relu6: 0 < y < 6; sigmoid: y (1 - y);
// tanh: 1 - y^2), so backward saves y, which the next layer usually keeps alive anyway, and never
// the input.
#include "engine/autograd.h"
#include "engine/ops.h"

namespace engine {

Tensor activation(Activation a, const Tensor& x) {
  const char* op = activation_name(a);
  check_float(op, "input", x);
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  ENGINE_KERNEL(x.device(), activation_forward)(a, x, y);

  if (autograd::needs_record({&x})) {
    Tensor ys = y.detach();
    autograd::record(op, y, {&x}, [a, ys](const Tensor& gy, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(ys.shape(), DType::F32, gy.device());
      ENGINE_KERNEL(gy.device(), activation_backward)(a, ys, gy, gx);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor relu(const Tensor& x) { return activation(Activation::ReLU, x); }
Tensor relu6(const Tensor& x) { return activation(Activation::ReLU6, x); }
Tensor sigmoid(const Tensor& x) { return activation(Activation::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return activation(Activation::Tanh, x); }

}  // namespace engine
