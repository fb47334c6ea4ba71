// The four custom CNNs against the study's PyTorch models (tests/py/study_models.py) with weights
// exported from PyTorch, in train mode (dropout off) and eval mode. The references are PyTorch's
// float64 results from the same float32 weights and inputs (fx_models.py says why):
// - at full size (64x64, width 1): logits and loss within 1e-4 relative (also against PyTorch's
//   float32 logits), and the running statistics after a training forward within 1e-4;
// - on a small instance of the same layers (width and image size in the fixture's metadata) drawn
//   so that no ReLU input and no max-pool window is near a tie in any forward, so that no branch
//   can flip in float32: each gradient within max(1e-4, 5 x PyTorch-float32's own error) relative,
//   and the losses of five RMSprop steps (alpha 0.9, lr 1e-5) within max(1e-3, 5 x
//   PyTorch-float32's own deviation at that step).
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

  CustomCnnOptions so = o;
  so.width = std::stof(meta.at("small.width"));
  so.image_size = std::stoi(meta.at("small.image_size"));
  CustomCnn small(so);
  const TensorMap small_init = with_prefix_removed(fx, "small.init.");
  const Tensor& sx = get(fx, "small.input");
  const Tensor& sy = get(fx, "small.target");

  for (std::string mode : {"train", "eval"}) {
    SCOPED_TRACE(variant + " " + mode);
    model.load_state_dict(init);
    model.train(mode == "train");
    {
      autograd::NoGradGuard no_grad;
      Tensor logits = model(x);
      EXPECT_CLOSE(logits, get(fx, mode + ".logits"), 1e-4);
      EXPECT_CLOSE(logits, get(fx, mode + ".logits32"), 1e-4);
      EXPECT_CLOSE(cross_entropy(logits, y), get(fx, mode + ".loss"), 1e-4);
    }
    if (mode == "train") {
      for (auto& [k, ref] : with_prefix_removed(fx, "train.after.")) {
        SCOPED_TRACE(k);
        EXPECT_CLOSE(model.state_dict().at(k), ref, 1e-4);
      }
    }

    small.load_state_dict(small_init);
    small.train(mode == "train");
    small.zero_grad();
    cross_entropy(small(sx), sy).backward();
    const TensorMap grads = with_prefix_removed(fx, "small." + mode + ".grad.");
    const auto torch_err = nlohmann::json::parse(meta.at(mode + ".torch_err"));
    EXPECT_EQ(grads.size(), small.named_parameters().size());
    for (auto& [k, p] : small.named_parameters()) {
      SCOPED_TRACE("gradient of " + k + ", PyTorch float32's error " + torch_err[k].dump());
      EXPECT_LE(testing::rel_err(p.grad(), get(grads, k)),
                std::max(1e-4, 5 * torch_err[k].get<double>()));
    }

    small.load_state_dict(small_init);
    small.zero_grad();
    RmspropOptions ro;
    ro.lr = std::stod(meta.at("rmsprop_lr"));
    ro.alpha = 0.9;
    RMSprop opt(small.named_parameters(), ro);
    auto ref = nlohmann::json::parse(meta.at(mode + ".rmsprop_losses"));
    auto ref32 = nlohmann::json::parse(meta.at(mode + ".rmsprop_losses32"));
    for (size_t s = 0; s < ref.size(); ++s) {
      opt.zero_grad();
      Tensor l = cross_entropy(small(sx), sy);
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
