// The engine's differentiable operations. Each checks its arguments (ranks, shapes, dtypes,
// devices, ranges) and throws engine::Error naming the op and the shapes, runs the kernel of the
// current backend from the op table, and records its backward when an input requires grad.
// One file per op family in engine/ops/ holds the forward beside its derivative.
#pragma once
#include <optional>
#include <vector>

#include "engine/op_table.h"
#include "engine/random.h"
#include "engine/tensor.h"

namespace engine {

// x [N, Cin, H, W], w [Cout, Cin/groups, kH, kW], b [Cout] or undefined. With p.activation set,
// y = act(conv(x, w) + b) in the convolution's own output pass (the fused epilogue that eval-mode
// conv + folded BatchNorm + ReLU/ReLU6 uses); backward applies act's derivative from y.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p = {});
// x [N, in] (or [in]), w [out, in], b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

// training: batch statistics, and running_mean/var (if defined) updated in place with momentum.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, bool training,
                  float momentum = 0.1f, float eps = 1e-5f);

Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor activation(Activation a, const Tensor& x);

// Inverted dropout drawing its mask from `gen`; identity when !training or p == 0.
Tensor dropout(const Tensor& x, float p, bool training, Generator& gen);

Tensor add(const Tensor& a, const Tensor& b);  // same shapes (residual connections)
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 1);

struct CrossEntropyOptions {
  Tensor weight;               // [C] class weights, or undefined
  float label_smoothing = 0.f;  // in [0, 1]
};
// Mean softmax cross-entropy of logits [N, C] against int64 targets [N] in [0, C).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const CrossEntropyOptions& opt = {});

// Output size of a convolution/pooling window along one axis; throws when it is not positive.
int64_t conv_out_size(const char* op, int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                      int64_t dilation, bool ceil_mode, const Shape& x_shape);

// Checks shared by the ops: defined, float32, on `device`, rank.
void check_float(const char* op, const char* what, const Tensor& t);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);

}  // namespace engine
