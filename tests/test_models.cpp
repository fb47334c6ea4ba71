// The four custom CNNs at full size against the study's PyTorch models (tests/py/study_models.py)
// with weights exported from PyTorch, in train mode (dropout off) and eval mode. The references
// are PyTorch's float64 results from the same float32 weights and inputs (fx_models.py says why):
// - logits and loss within 1e-4 relative (also against PyTorch's float32 logits);
// - each gradient within max(1e-4, 5 x PyTorch-float32's own error) relative. Only the parameters
//   upstream of a max pool (seq1..seq3; not fc1..fc3) may instead be within what one branch flip
//   explains: every element within 5e-2 of the largest (1e-1 with batch norm in train mode) and
//   cosine >= 0.9999 (see below);
// - running statistics after a training forward within 1e-4;
// - the losses of five RMSprop steps (alpha 0.9, lr 1e-5) within max(1e-3, 5 x PyTorch-float32's
//   own deviation at that step).
#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "engine/optim.h"
#include "models/custom_cnn.h"
#include "tests/testing.h"

namespace engine {
namespace {
using testing::get;

TensorMap with_prefix_removed(const TensorMap& fx, const std::string& prefix) {
  TensorMap out;
  for (auto& [k, v] : fx)
    if (k.rfind(prefix, 0) == 0) out.emplace(k.substr(prefix.size()), v);
  return out;
}

// A branch flip: where a max pool's window holds two values within float32 rounding of each other,
// or a ReLU's input is within rounding of 0, our float32 forward may take the other branch than
// float64 does, and one flipped element moves the gradient of every parameter upstream of it.
// Every seqK block (conv, batch norm, ReLU) ends in MaxPool2d(2), so its parameters are the ones
// upstream of a max pool; fc1..fc3 follow the last pool and are held to the strict rule (their
// ReLU inputs stay >= 7e-6 of the largest away from 0 here, far beyond rounding).
// Measured on a 2-core AMD EPYC without AVX-512 (2026-12-02; tests/py/fx_models.py says how the
// flips were found): simple, one ReLU flip in seq2.3 (input 1.2e-7 of the largest): seq2.2's
// gradients 3.2e-2 of their largest element, those upstream 5.7e-3..1.0e-2; tanh, a max-pool
// flip in seq1: seq1.4.weight 2.3e-2; bn_dropout, one ReLU flip in seq3.8 after a train-mode
// batch norm: seq3.6.weight 1.7e-1, seq3.7.bias 5.0e-2 (a train-mode batch norm spreads the flip
// over its channel, and the convs in front of it have small gradients; against the CPU, the
// emulated CUDA step flips one there too: 9.2e-2. 1.7e-1 is beyond the bound of 1e-1 this test
// has always had there, so it fails on this machine); sigmoid none beyond the strict rule. Cosine
// >= 0.99996 in every case (1 - cosine <= 3.4e-5), so 0.9999 leaves a factor 3.
bool upstream_of_max_pool(const std::string& name) { return name.rfind("seq", 0) == 0; }
double flip_err(bool batch_norm_in_train_mode) { return batch_norm_in_train_mode ? 1e-1 : 5e-2; }
constexpr double kFlipCosine = 0.9999;

class ParityModels : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityModels, LogitsLossGradientsAndRmspropStepsMatchPyTorch) {
  const std::string variant = GetParam();
  Metadata meta;
  TensorMap fx = testing::load_fixture("model_" + variant + ".safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  CustomCnnOptions o;
  o.variant = parse_cnn_variant(variant);
  o.dropout = 0.f;
  CustomCnn model(o);
  const TensorMap init = with_prefix_removed(fx, "init.");
  const Tensor& x = get(fx, "input");
  const Tensor& y = get(fx, "target");

  for (std::string mode : {"train", "eval"}) {
    SCOPED_TRACE(variant + " " + mode);
    model.load_state_dict(init);
    model.train(mode == "train");
    model.zero_grad();
    Tensor logits = model(x);
    Tensor loss = cross_entropy(logits, y);
    EXPECT_CLOSE(logits, get(fx, mode + ".logits"), 1e-4);
    EXPECT_CLOSE(logits, get(fx, mode + ".logits32"), 1e-4);
    EXPECT_CLOSE(loss, get(fx, mode + ".loss"), 1e-4);
    loss.backward();
    if (mode == "train") {
      for (auto& [k, ref] : with_prefix_removed(fx, "train.after.")) {
        SCOPED_TRACE(k);
        EXPECT_CLOSE(model.state_dict().at(k), ref, 1e-4);
      }
    }
    const TensorMap grads = with_prefix_removed(fx, mode + ".grad.");
    const auto torch_err = nlohmann::json::parse(meta.at(mode + ".torch_err"));
    EXPECT_EQ(grads.size(), model.named_parameters().size());
    for (auto& [k, p] : model.named_parameters()) {
      SCOPED_TRACE("gradient of " + k + ", PyTorch float32's error " + torch_err[k].dump());
      const double tol = std::max(1e-4, 5 * torch_err[k].get<double>());
      const double err = testing::rel_err(p.grad(), get(grads, k));
      if (err <= tol) continue;
      if (!upstream_of_max_pool(k)) {
        EXPECT_LE(err, tol);
        continue;
      }
      const double cos = testing::cosine(p.grad(), get(grads, k));
      const double bound = flip_err(o.variant == CnnVariant::BnDropout && mode == "train");
      EXPECT_TRUE(err <= bound && cos >= kFlipCosine)
          << "error " << err << " beyond " << tol << ", and beyond what one branch flip "
          << "explains (error <= " << bound << ", cosine >= " << kFlipCosine << "): cosine " << cos;
    }

    model.load_state_dict(init);
    model.zero_grad();
    RmspropOptions ro;
    ro.lr = std::stod(meta.at("rmsprop_lr"));
    ro.alpha = 0.9;
    RMSprop opt(model.named_parameters(), ro);
    auto ref = nlohmann::json::parse(meta.at(mode + ".rmsprop_losses"));
    auto ref32 = nlohmann::json::parse(meta.at(mode + ".rmsprop_losses32"));
    for (size_t s = 0; s < ref.size(); ++s) {
      opt.zero_grad();
      Tensor l = cross_entropy(model(x), y);
      l.backward();
      opt.step();
      const double ours = l.item(), r = ref[s], r32 = ref32[s];
      const double torch_dev = std::abs(r32 - r) / std::abs(r);
      EXPECT_LE(std::abs(ours - r) / std::abs(r), std::max(1e-3, 5 * torch_dev))
          << "step " << s << ": ours " << ours << ", PyTorch float64 " << r << ", float32 " << r32;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(FourCnns, ParityModels,
                         ::testing::Values("simple", "bn_dropout", "sigmoid", "tanh"));

TEST(Models, StateDictKeysAreTheStudys) {
  CustomCnnOptions o;
  o.variant = CnnVariant::BnDropout;
  o.width = 0.125f;
  CustomCnn m(o);
  TensorMap sd = m.state_dict();
  for (const char* k : {"seq1.0.weight", "seq1.0.bias", "seq1.1.weight", "seq1.1.running_mean",
                        "seq1.1.running_var", "seq1.1.num_batches_tracked", "seq3.6.weight",
                        "fc1.weight", "fc3.bias"}) {
    EXPECT_TRUE(sd.count(k)) << k;
  }
  // 9 convs (w, b) + 9 BN (w, b, mean, var, count) + 3 linears (w, b).
  EXPECT_EQ(sd.size(), 9u * 2 + 9u * 5 + 3u * 2);
  o.variant = CnnVariant::Simple;
  CustomCnn s(o);
  EXPECT_EQ(s.state_dict().size(), 9u * 2 + 3u * 2);
  EXPECT_TRUE(s.state_dict().count("seq1.2.weight"));  // conv, relu, conv: index 2
}

TEST(Models, FullSizeParameterCount) {
  // Matches sum(p.numel() for p in StudyCnn("simple").parameters()) in PyTorch.
  CustomCnn m(CustomCnnOptions{});
  EXPECT_EQ(m.num_parameters(), 33198214);
}

TEST(Models, LoadStateDictListsEveryBadKey) {
  CustomCnnOptions o;
  o.width = 0.125f;
  CustomCnn m(o);
  TensorMap sd;
  for (auto& [k, v] : m.state_dict()) sd.emplace(k, v.clone());
  sd.erase("fc1.bias");
  sd.erase("seq2.0.weight");
  sd.emplace("head.weight", Tensor::zeros({2}));
  sd["fc3.weight"] = Tensor::zeros({7, 32});
  try {
    m.load_state_dict(sd);
    FAIL() << "no exception";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const char* k : {"fc1.bias", "seq2.0.weight", "head.weight", "fc3.weight", "[7, 32]"}) {
      EXPECT_NE(msg.find(k), std::string::npos) << k << " not in: " << msg;
    }
  }
}

TEST(Models, SummaryListsLayersAndTotals) {
  CustomCnnOptions o;
  o.width = 0.125f;
  o.image_size = 16;
  CustomCnn m(o);
  std::string s = summary(m, {1, 3, 16, 16});
  EXPECT_NE(s.find("seq1.0 (Conv2d)"), std::string::npos) << s;
  EXPECT_NE(s.find("[1, 4, 16, 16]"), std::string::npos) << s;
  EXPECT_NE(s.find("fc3 (Linear)"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: " + std::to_string(m.num_parameters())), std::string::npos);
}

TEST(Models, WrongInputShapeNamesModelAndShape) {
  CustomCnnOptions o;
  o.width = 0.125f;
  CustomCnn m(o);
  try {
    m(Tensor::zeros({2, 3, 32, 32}));
    FAIL() << "no exception";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("[2, 3, 32, 32]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("simple"), std::string::npos) << msg;
  }
  EXPECT_THROW(CustomCnn(CustomCnnOptions{.image_size = 60}), Error);
}

TEST(Models, FrozenBackboneRunsHeadBackwardOnly) {
  // Freezing seq1..seq3 and fc1/fc2 leaves only fc3's backward (and the loss) to run.
  CustomCnnOptions o;
  o.width = 0.125f;
  o.image_size = 16;
  CustomCnn m(o);
  for (auto& [k, p] : m.named_parameters()) {
    if (k.rfind("fc3.", 0) != 0) {
      Tensor h = p;
      h.set_requires_grad(false);
    }
  }
  Generator gen(1);
  Tensor loss =
      cross_entropy(m(Tensor::rand({2, 3, 16, 16}, gen)), Tensor::from_vector_i64({2}, {1, 4}));
  autograd::stats().nodes_run = 0;
  loss.backward();
  EXPECT_EQ(autograd::stats().nodes_run, 2u);  // cross_entropy and fc3's linear
  for (auto& [k, p] : m.named_parameters()) {
    EXPECT_EQ(p.grad().defined(), k.rfind("fc3.", 0) == 0) << k;
  }
}

}  // namespace
}  // namespace engine
