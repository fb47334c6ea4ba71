// The study's four custom CNNs at full size (a quarter of the width when emulated: the same
// kernels on a sixteenth of the convolution work): one training step (forward, cross-entropy, backward,
// RMSprop update, and a second forward) on CUDA under each backend against the same step on the
// CPU, from identical weights, inputs and dropout masks (Philox is the same on both devices).
// TF32 is off throughout (native kernels never use it; the cudnn backend defaults to off).
// Tolerances, max|cuda - cpu| / max|cpu|:
// - logits and loss: 1e-4 (two float32 implementations summing in different orders);
// - every gradient: 1e-3. Only the parameters upstream of a max pool (seq1..seq3, not fc1..fc3)
//   may instead be within what one branch flip explains: every element within 5e-2 of the
//   largest (2e-1 for bn_dropout, whose train-mode batch norms spread a flip over the channel)
//   and cosine >= 0.9999. Where a pooling window holds two values within float32 rounding of each
//   other, or a ReLU's input is within rounding of 0, either device may take the other branch, and
//   that moves every gradient upstream of it; tests/test_models.cpp has the measurements (CPU
//   against float64 PyTorch: up to 3.2e-2 for simple and tanh, 1.7e-1 for bn_dropout; 1 - cosine
//   <= 3.4e-5). Emulated (tests/cuda_emu, 2026-12-02) against the CPU: simple within 1.1e-3
//   (1 - cosine <= 2e-7); bn_dropout one flip, seq3.6.weight 9.2e-2, seq3.3.weight 4.9e-2
//   (1 - cosine <= 1.5e-5); 2026-12-03, with the CPU's Winograd F(4x4) and F(2x2) defaults and
//   2 threads: one flip, seq3.3.weight 1.01e-1 (1 - cosine 6.6e-6), past the 1e-1 this test
//   allowed then but within the 1.7e-1 that flips reach against float64, hence 2e-1;
// - the conv biases of bn_dropout (each followed by BatchNorm in train mode) have true gradient 0,
//   so both devices return rounding noise: held to max|g| <= 1e-3 x max|that conv's weight grad|;
// - loss after one RMSprop step (lr 1e-5, alpha 0.9): 1e-3.
#include <cmath>

#include "engine/autograd.h"
#include "engine/optim.h"
#include "models/custom_cnn.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::cosine;

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::abs(double{v}));
  return m;
}

// Where a branch flip can reach: every seqK block (conv, batch norm, ReLU) ends in MaxPool2d(2),
// so its parameters are the ones upstream of a max pool; fc1..fc3 follow the last pool.
bool upstream_of_max_pool(const std::string& name) { return name.rfind("seq", 0) == 0; }
double flip_err(const std::string& variant) { return variant == "bn_dropout" ? 2e-1 : 5e-2; }
constexpr double kFlipCosine = 0.9999;

struct StepResult {
  Tensor logits, loss, loss_after;
  std::vector<std::pair<std::string, Tensor>> grads;  // on the CPU
};

// One step of `variant` on device d, from weights drawn with a fixed seed.
StepResult train_step(const std::string& variant, Device d, const Tensor& x_cpu,
                      const Tensor& y_cpu) {
  Generator init(1234), drop(99);
  CustomCnnOptions o;
  o.variant = parse_cnn_variant(variant);
#ifdef ENGINE_CUDA_EMU
  // Emulated, a full-width step took about 145 s. A quarter width (8 to 256 channels) chains the
  // same layer kinds; the planner may pick other GEMM tiles and splits than at full width, and
  // the per-op tests (test_cuda_conv_planner.cpp) force each of those on its own.
  o.width = 0.25f;
#endif
  CustomCnn model(o, init);
  if (model.dropout_layer()) model.dropout_layer()->set_generator(drop);
  model.to(d);
  model.train();
  RMSprop opt(model.named_parameters(), {.lr = 1e-5, .alpha = 0.9});
  const Tensor x = x_cpu.to(d), y = y_cpu.to(d);

  StepResult r;
  opt.zero_grad();
  r.logits = model(x);
  Tensor loss = cross_entropy(r.logits, y);
  loss.backward();
  r.loss = loss.to(Device::cpu());
  r.logits = r.logits.to(Device::cpu());
  for (auto& [name, p] : model.named_parameters())
    r.grads.emplace_back(name, p.grad().to(Device::cpu()));
  opt.step();
  {
    autograd::NoGradGuard no_grad;
    r.loss_after = cross_entropy(model(x), y).to(Device::cpu());
  }
  return r;
}

class CudaModelStep : public ::testing::TestWithParam<std::tuple<std::string, Backend>> {};

TEST_P(CudaModelStep, MatchesCpuStep) {
  ENGINE_REQUIRE_CUDA();
  const auto& [variant, backend] = GetParam();
  if (backend == Backend::Cudnn && !supports(Backend::Cudnn, &KernelTable::conv2d_forward))
    GTEST_SKIP() << "this build has no cudnn backend";
#ifdef ENGINE_CUDA_EMU
  // Emulated, a full-size step takes minutes; sigmoid and tanh run the kernels of `simple` with
  // another activation, which CudaActivation covers on its own.
  if (variant == "sigmoid" || variant == "tanh")
    GTEST_SKIP() << "cuda-emu: the kernels of simple with another activation (CudaActivation "
                    "covers it); left to the GPU run";
#endif
  Generator gen(7);
  const int64_t n = 4;
  Tensor x = Tensor::randn({n, 3, 64, 64}, gen);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(static_cast<int64_t>(gen.below(6)));
  Tensor y = Tensor::from_vector_i64({n}, labels);

  const StepResult ref = train_step(variant, Device::cpu(), x, y);
  BackendScope scope(backend);
  const StepResult got = train_step(variant, Device::cuda(), x, y);

  EXPECT_CLOSE(got.logits, ref.logits, 1e-4);
  EXPECT_CLOSE(got.loss, ref.loss, 1e-4);
  EXPECT_CLOSE(got.loss_after, ref.loss_after, 1e-3);
  ASSERT_EQ(got.grads.size(), ref.grads.size());
  for (size_t i = 0; i < ref.grads.size(); ++i) {
    const auto& [name, g_ref] = ref.grads[i];
    const Tensor& g = got.grads[i].second;
    SCOPED_TRACE(name);
    const double err = testing::rel_err(g, g_ref);
    if (err <= 1e-3) continue;
    // seqK.J.bias of a conv followed by BatchNorm (bn_dropout): rounding noise on both sides.
    const std::string weight_name = name.substr(0, name.size() - 4) + "weight";
    bool noise_bias = false;
    if (variant == "bn_dropout" && name.rfind("seq", 0) == 0 && name.ends_with(".bias")) {
      for (const auto& [wn, wg] : ref.grads)
        if (wn == weight_name && wg.dim() == 4) noise_bias = true;
    }
    if (noise_bias) {
      double wmax = 0;
      for (const auto& [wn, wg] : ref.grads)
        if (wn == weight_name) wmax = max_abs(wg);
      EXPECT_LE(max_abs(g), 1e-3 * wmax) << "conv bias before BatchNorm: expected noise only";
      continue;
    }
    if (!upstream_of_max_pool(name)) {
      EXPECT_LE(err, 1e-3);
      continue;
    }
    const double cos = cosine(g, g_ref);
    EXPECT_TRUE(err <= flip_err(variant) && cos >= kFlipCosine)
        << "error " << err
        << " beyond 1e-3, and beyond what one branch flip explains (error <= " << flip_err(variant)
        << ", cosine >= " << kFlipCosine << "): cosine " << cos;
  }
}

std::string step_name(const ::testing::TestParamInfo<CudaModelStep::ParamType>& info) {
  return std::get<0>(info.param) + "_" + backend_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(FourCnns, CudaModelStep,
                         ::testing::Combine(::testing::Values("simple", "bn_dropout", "sigmoid",
                                                              "tanh"),
                                            ::testing::Values(Backend::Native, Backend::Cudnn)),
                         step_name);

}  // namespace
}  // namespace engine
