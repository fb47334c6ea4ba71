// The layers of the study's models, each a thin Module over one op of engine/ops.h, with
// PyTorch's parameter names and default initialisation.
#pragma once
#include <initializer_list>

#include "engine/ops.h"
#include "engine/random.h"
#include "layers/module.h"

namespace engine {

// Weight initialisers (in place, drawing from `gen`).
namespace init {
// Kaiming/He normal with ReLU gain: std = sqrt(2 / fan), fan_in (PyTorch's default mode) or
// fan_out = out_channels / groups * kH * kW (torchvision's ResNet and MobileNetV2).
void kaiming_normal_(Tensor& w, Generator& gen, bool fan_out = false);
void normal_(Tensor& t, float stddev, Generator& gen);  // N(0, stddev^2)
// PyTorch's default for Conv2d/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
void default_uniform_(Tensor& t, int64_t fan_in, Generator& gen);
int64_t fan_in(const Tensor& w);  // in_features, or Cin/groups * kH * kW
}  // namespace init

struct Conv2dOptions {
  int64_t stride = 1, padding = 0, groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, Conv2dOptions o = {},
         Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  Tensor weight, bias;  // bias undefined when o.bias is false
  Conv2dParams params;
};

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  Tensor weight, bias;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm2d"; }
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  float eps, momentum;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override { return max_pool2d(x, params); }
  std::string type_name() const override { return "MaxPool2d"; }
  Pool2dParams params;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, params); }
  std::string type_name() const override { return "AvgPool2d"; }
  Pool2dParams params;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : out_h_(out_h), out_w_(out_w) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_h_, out_w_); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }

 private:
  int64_t out_h_, out_w_;
};

class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation a) : kind(a) {}
  Tensor forward(const Tensor& x) override { return activation(kind, x); }
  std::string type_name() const override;
  Activation kind;
};

class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override { return dropout(x, p, is_training(), *gen_); }
  std::string type_name() const override { return "Dropout"; }
  void set_generator(Generator& g) { gen_ = &g; }
  float p;

 private:
  Generator* gen_;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1) : start_dim_(start_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_dim_); }
  std::string type_name() const override { return "Flatten"; }

 private:
  int64_t start_dim_;
};

// Children named "0", "1", ... as torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential& add(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return layers_.size(); }
  Module& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<ModulePtr> layers_;
};

}  // namespace engine
