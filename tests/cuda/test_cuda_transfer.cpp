// ResNet-50 and MobileNetV2 on CUDA under each backend against the CPU, from identical weights
// (torchvision-style initialisation with BatchNorm statistics drawn at random, so eval-mode BN is
// not the identity) and inputs, 64x64, batch 2:
// - eval-mode inference with BatchNorm folding (the feature-extraction pass of frozen
//   fine-tuning): logits within 1e-4 of the CPU's largest (two float32 implementations summing in
//   different orders through some fifty layers);
// - a frozen-backbone step (head trainable, frozen BN in eval mode, dropout off): the head's
//   gradients within 1e-4, and every backbone tensor unchanged.
// Both run emulated too (tests/cuda_emu, native backend).
#include "engine/autograd.h"
#include "engine/optim.h"
#include "models/mobilenet_v2.h"
#include "models/resnet.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

std::shared_ptr<TransferModel> make(const std::string& arch) {
  Generator gen(21);
  std::shared_ptr<TransferModel> m;
  if (arch == "resnet50") {
    m = std::make_shared<ResNet50>(ResNetOptions{.num_classes = 6}, gen);
  } else {
    auto mb = std::make_shared<MobileNetV2>(MobileNetV2Options{.num_classes = 6}, gen);
    mb->dropout_layer().p = 0.f;
    m = mb;
  }
  Generator stats(22);
  for (auto& [name, mod] : m->named_modules()) {
    auto* bn = dynamic_cast<BatchNorm2d*>(mod);
    if (!bn) continue;
    bn->running_mean.copy_(Tensor::randn(bn->running_mean.shape(), stats, 0.f, 0.2f));
    bn->running_var.copy_(Tensor::rand(bn->running_var.shape(), stats, 0.5f, 2.f));
    bn->weight.copy_(Tensor::rand(bn->weight.shape(), stats, 0.5f, 1.5f));
    bn->bias.copy_(Tensor::randn(bn->bias.shape(), stats, 0.f, 0.2f));
  }
  Module::touch_state();
  return m;
}

using Param = std::tuple<std::string, Backend>;
class CudaTransfer : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    ENGINE_REQUIRE_CUDA();
    const auto& [arch, backend] = GetParam();
    if (backend == Backend::Cudnn && !supports(Backend::Cudnn, &KernelTable::conv2d_forward))
      GTEST_SKIP() << "this build has no cudnn backend";
  }
};

TEST_P(CudaTransfer, EvalInferenceMatchesCpu) {
  const auto& [arch, backend] = GetParam();
  Generator gen(5);
  Tensor x = Tensor::randn({2, 3, 64, 64}, gen);
  autograd::NoGradGuard no_grad;
  auto cpu = make(arch);
  cpu->eval();
  cpu->freeze();
  Tensor ref = (*cpu)(x);
  auto gpu = make(arch);
  gpu->eval();
  gpu->freeze();
  gpu->to(Device::cuda(0));
  BackendScope scope(backend);
  Tensor out = (*gpu)(x.to(Device::cuda(0)));
  EXPECT_CLOSE(out, ref, 1e-4);
}

TEST_P(CudaTransfer, FrozenBackboneStepMatchesCpu) {
  const auto& [arch, backend] = GetParam();
  Generator gen(6);
  Tensor x = Tensor::randn({2, 3, 64, 64}, gen);
  Tensor y = Tensor::from_vector_i64({2}, {1, 4});
  auto step = [&](Device d, TensorMap* state_after) {
    auto m = make(arch);
    freeze_backbone(*m);
    m->to(d);
    m->train();
    for (auto& [name, mod] : m->named_modules())
      if (auto* bn = dynamic_cast<BatchNorm2d*>(mod)) bn->eval();
    Tensor loss = cross_entropy((*m)(x.to(d)), y.to(d));
    loss.backward();
    std::vector<Tensor> grads;
    for (auto& [name, p] : m->named_parameters())
      if (p.requires_grad()) grads.push_back(p.grad().to(Device::cpu()));
    for (auto& [name, t] : m->state_dict()) (*state_after)[name] = t.to(Device::cpu());
    return grads;
  };
  TensorMap cpu_state, gpu_state;
  std::vector<Tensor> ref = step(Device::cpu(), &cpu_state);
  std::vector<Tensor> out;
  {
    BackendScope scope(backend);
    out = step(Device::cuda(0), &gpu_state);
  }
  ASSERT_EQ(out.size(), 2u);  // the head's weight and bias
  ASSERT_EQ(ref.size(), 2u);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_CLOSE(out[i], ref[i], 1e-4);
  // Frozen BN in eval mode: the step changed no running statistic on either device.
  for (auto& [name, t] : gpu_state) {
    if (name.find("running_") != std::string::npos) {
      EXPECT_CLOSE(t, cpu_state.at(name), 0) << name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    TransferModels, CudaTransfer,
    ::testing::Combine(::testing::Values("resnet50", "mobilenet_v2"),
                       ::testing::Values(Backend::Native, Backend::Cudnn)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + backend_name(std::get<1>(info.param));
    });

}  // namespace
}  // namespace engine
