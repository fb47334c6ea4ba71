// conv2d and linear against PyTorch: outputs and all three gradients, tolerance 1e-4 relative.
#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "tests/testing.h"

namespace engine {
namespace {
using testing::get;

constexpr double kTol = 1e-4;

// Runs y = op(x, w, b), backward of sum(y * gy), and compares y, gx, gw, gb.
template <typename Op>
void check_case(const TensorMap& fx, const std::string& pre, bool bias, Op op) {
  Tensor x = get(fx, pre + "x").clone().set_requires_grad(true);
  Tensor w = get(fx, pre + "w").clone().set_requires_grad(true);
  Tensor b = bias ? get(fx, pre + "b").clone().set_requires_grad(true) : Tensor();
  Tensor y = op(x, w, b);
  EXPECT_CLOSE(y, get(fx, pre + "y"), kTol);
  y.backward(get(fx, pre + "gy"));
  EXPECT_CLOSE(x.grad(), get(fx, pre + "gx"), kTol);
  EXPECT_CLOSE(w.grad(), get(fx, pre + "gw"), kTol);
  if (bias) {
    EXPECT_CLOSE(b.grad(), get(fx, pre + "gb"), kTol);
  }
}

void check_conv_fixture();

TEST(ParityConv2d, ForwardAndGradientsMatchPyTorch) { check_conv_fixture(); }

// Every case again with each CPU algorithm forced where it applies (im2col, Winograd F(2x2,3x3)
// and F(4x4,3x3)).
TEST(ParityConv2d, EachAlgorithmMatchesPyTorch) {
  for (auto a : {cpu::ConvAlgorithm::Im2col, cpu::ConvAlgorithm::Winograd2,
                 cpu::ConvAlgorithm::Winograd4}) {
    SCOPED_TRACE("algorithm " + std::to_string(static_cast<int>(a)));
    cpu::set_conv_algorithm(a);
    check_conv_fixture();
  }
  cpu::set_conv_algorithm(cpu::ConvAlgorithm::Auto);
}

void check_conv_fixture() {
  Metadata meta;
  TensorMap fx = testing::load_fixture("conv2d.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = nlohmann::json::parse(meta.at("cases"));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("conv2d case " + std::to_string(i) + " " + cases[i].dump());
    Conv2dParams p;
    p.stride_h = p.stride_w = cases[i]["stride"];
    p.pad_h = p.pad_w = cases[i]["pad"];
    p.groups = cases[i]["groups"];
    check_case(fx, "c" + std::to_string(i) + ".", cases[i]["bias"],
               [&](const Tensor& x, const Tensor& w, const Tensor& b) { return conv2d(x, w, b, p); });
  }
}

TEST(ParityLinear, ForwardAndGradientsMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("linear.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = nlohmann::json::parse(meta.at("cases"));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("linear case " + std::to_string(i));
    check_case(fx, "c" + std::to_string(i) + ".", cases[i]["bias"],
               [](const Tensor& x, const Tensor& w, const Tensor& b) { return linear(x, w, b); });
  }
}

TEST(ShapeErrors, Conv2dNamesOpAndShapes) {
  Tensor x = Tensor::zeros({2, 3, 8, 8}), w = Tensor::zeros({4, 2, 3, 3});
  try {
    conv2d(x, w, Tensor());
    FAIL() << "no exception";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("conv2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 2, 3, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 8, 8]"), std::string::npos) << m;
  }
  EXPECT_THROW(conv2d(Tensor::zeros({2, 3, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor()), Error);
  Conv2dParams bad;
  bad.stride_h = 0;
  EXPECT_THROW(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), bad), Error);
  bad = {};
  bad.pad_h = -1;
  EXPECT_THROW(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), bad), Error);
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 2, 2}), Tensor::zeros({4, 3, 3, 3}), Tensor()), Error);
  EXPECT_THROW(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5})), Error);
}

TEST(ShapeErrors, LinearNamesOpAndShapes) {
  try {
    linear(Tensor::zeros({2, 5}), Tensor::zeros({3, 4}), Tensor());
    FAIL() << "no exception";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("linear"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 5]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 4]"), std::string::npos) << m;
  }
  EXPECT_THROW(linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), Tensor::zeros({2})), Error);
}

}  // namespace
}  // namespace engine
