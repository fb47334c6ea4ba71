// conv2d and linear against PyTorch: outputs and all three gradients, tolerance 1e-4 relative.
// conv2d with a fused activation (Conv2dParams::activation) against PyTorch's act(conv) computed
// in float64, element-wise, with each CPU algorithm; and against conv2d followed by the activation
// op, which ReLU/ReLU6 must equal bit for bit (the epilogue does the same float operations).
#include <cstring>

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
// and F(4x4,3x3), direct).
TEST(ParityConv2d, EachAlgorithmMatchesPyTorch) {
  for (auto a : {cpu::ConvAlgorithm::Im2col, cpu::ConvAlgorithm::Winograd2,
                 cpu::ConvAlgorithm::Winograd4, cpu::ConvAlgorithm::Direct}) {
    SCOPED_TRACE("algorithm " + std::to_string(static_cast<int>(a)));
    cpu::set_conv_algorithm(a);
    check_conv_fixture();
  }
  cpu::set_conv_algorithm(cpu::ConvAlgorithm::Auto);
}

// Winograd in several chunks of images and several blocks of output channels (what the largest
// layers do: F(4x4)'s transformed weights for 1024 -> 1024 go in blocks of 224 channels), forced
// on the fixture's small shapes: one image per chunk, blocks of 3 channels (the last one partial).
TEST(ParityConv2d, WinogradInChunksAndBlocksMatchesPyTorch) {
  for (auto a : {cpu::ConvAlgorithm::Winograd2, cpu::ConvAlgorithm::Winograd4}) {
    SCOPED_TRACE("algorithm " + std::to_string(static_cast<int>(a)));
    cpu::set_conv_algorithm(a);
    cpu::set_winograd_limits({.chunk_images = 1, .cout_block = 3});
    check_conv_fixture();
    cpu::set_winograd_limits({});
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
    check_case(
        fx, "c" + std::to_string(i) + ".", cases[i]["bias"],
        [&](const Tensor& x, const Tensor& w, const Tensor& b) { return conv2d(x, w, b, p); });
  }
}

// ---- conv2d with a fused activation ----

constexpr cpu::ConvAlgorithm kAlgorithms[] = {
    cpu::ConvAlgorithm::Auto, cpu::ConvAlgorithm::Im2col, cpu::ConvAlgorithm::Winograd2,
    cpu::ConvAlgorithm::Winograd4, cpu::ConvAlgorithm::Direct};
const char* algorithm_label(cpu::ConvAlgorithm a) {
  switch (a) {
    case cpu::ConvAlgorithm::Auto:
      return "auto";
    case cpu::ConvAlgorithm::Im2col:
      return "im2col";
    case cpu::ConvAlgorithm::Winograd2:
      return "winograd2";
    case cpu::ConvAlgorithm::Winograd4:
      return "winograd4";
    case cpu::ConvAlgorithm::Direct:
      return "direct";
  }
  return "?";
}

// Forces a CPU conv algorithm for a scope (what ENGINE_CONV_ALGO does per process).
struct AlgorithmScope {
  explicit AlgorithmScope(cpu::ConvAlgorithm a) { cpu::set_conv_algorithm(a); }
  ~AlgorithmScope() { cpu::set_conv_algorithm(cpu::ConvAlgorithm::Auto); }
};

Activation activation_from(const std::string& name) {
  for (Activation a : {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh})
    if (name == activation_name(a)) return a;
  ADD_FAILURE() << "unknown activation " << name;
  return Activation::ReLU;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, static_cast<double>(std::abs(v)));
  return m;
}

// Element-wise: |ours - ref| <= rtol |ref| + atol max|ref|. The reference is float64 PyTorch;
// ours is float32. Each output and gradient is a sum of up to K = 1152 (forward) or N*OH*OW*taps
// (gradients) products of random sign, whose float32 rounding error does not shrink with the
// element (so atol, relative to the largest element, carries it), and the activation does not
// amplify it (relu/relu6 are 1-Lipschitz, sigmoid 1/4, tanh 1; their derivatives from y are
// Lipschitz in y). rtol covers sigmoid/tanh's own rounding (Cephes polynomials, 1.5e-7 relative).
// Largest measured, in units of max|ref|: im2col and Winograd F(2x2) 1.3e-6 (tanh's y: its
// outputs are at most 1 while the rounding comes from pre-activations up to ~8; every other
// tensor below 7.2e-7); F(4x4) between 4.0e-6 and 4.5e-6 on that same tensor (its larger
// transform constants; 1.0e-5 with the usual interpolation points 0, +-1, +-2, see
// kernels/cpu/conv2d_winograd.cpp). One tolerance for every algorithm: atol 5e-6.
constexpr double kActRtol = 1e-6;
double act_atol(cpu::ConvAlgorithm) { return 5e-6; }
#define EXPECT_ACT_CLOSE(ours, ref, atol) EXPECT_ALLCLOSE(ours, ref, kActRtol, (atol)*max_abs(ref))

void check_conv_activation_fixture(double atol) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("conv2d_activation.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = nlohmann::json::parse(meta.at("cases"));
  ASSERT_GE(cases.size(), 9u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("conv2d activation case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    Conv2dParams p;
    p.stride_h = p.stride_w = cases[i]["stride"];
    p.pad_h = p.pad_w = cases[i]["pad"];
    p.groups = cases[i]["groups"];
    p.activation = activation_from(cases[i]["activation"]);
    const bool bias = cases[i]["bias"];
    Tensor x = get(fx, pre + "x").clone().set_requires_grad(true);
    Tensor w = get(fx, pre + "w").clone().set_requires_grad(true);
    Tensor b = bias ? get(fx, pre + "b").clone().set_requires_grad(true) : Tensor();
    Tensor y = conv2d(x, w, b, p);
    EXPECT_ACT_CLOSE(y, get(fx, pre + "y"), atol);
    y.backward(get(fx, pre + "gy"));
    EXPECT_ACT_CLOSE(x.grad(), get(fx, pre + "gx"), atol);
    EXPECT_ACT_CLOSE(w.grad(), get(fx, pre + "gw"), atol);
    if (bias) {
      EXPECT_ACT_CLOSE(b.grad(), get(fx, pre + "gb"), atol);
    }
  }
}

// The fixture's cases: the ResNet stem (7x7 stride 2 pad 3, 3 channels), 1x1 stride 2 and 1,
// depthwise 3x3 stride 2, 3x3 stride 1 with 128 channels (Winograd unless im2col is forced), with
// relu, relu6, sigmoid and tanh, with and without bias.
TEST(ParityConv2dActivation, EachAlgorithmMatchesPyTorch) {
  for (cpu::ConvAlgorithm a : kAlgorithms) {
    SCOPED_TRACE(std::string("algorithm ") + algorithm_label(a));
    AlgorithmScope scope(a);
    check_conv_activation_fixture(act_atol(a));
  }
}

// Bitwise equality, so that -0 against +0 and NaN payloads count too.
::testing::AssertionResult bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  }
  const std::vector<float> u = a.to_vector(), v = b.to_vector();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < u.size(); ++i)
    if (std::memcmp(&u[i], &v[i], sizeof(float)) != 0 && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << u.size() << " elements differ; first at "
                                       << first << ": " << u[first] << " vs " << v[first];
}

struct EpilogueCase {
  std::string name;
  Shape x;
  int64_t cout, k, stride, pad, groups;
  bool bias;
};

// One case per path of the CPU kernels' output pass: im2col in chunks (3x3, 7x7 stride 2, 1x1
// stride 2), the per-image path (1x1 stride 1 using x as col, grouped, depthwise) and Winograd
// (3x3 stride 1, 128 channels: F(2x2) by default, F(4x4) or im2col when forced).
const std::vector<EpilogueCase>& epilogue_cases() {
  static const std::vector<EpilogueCase> c = {
      {"3x3 pad 1", {2, 8, 9, 7}, 12, 3, 1, 1, 1, true},
      {"7x7 stride 2 pad 3", {2, 3, 15, 16}, 8, 7, 2, 3, 1, true},
      {"1x1 stride 2, no bias", {2, 16, 9, 9}, 8, 1, 2, 0, 1, false},
      {"1x1 stride 1", {3, 16, 6, 5}, 24, 1, 1, 0, 1, true},
      {"1x1 stride 1, no bias", {2, 16, 6, 5}, 8, 1, 1, 0, 1, false},
      {"groups 2", {2, 6, 8, 9}, 10, 3, 1, 1, 2, true},
      {"depthwise 3x3 stride 2", {2, 16, 9, 9}, 16, 3, 2, 1, 16, true},
      {"128 -> 8, 3x3", {2, 128, 7, 6}, 8, 3, 1, 1, 1, true},
      {"128 -> 8, 3x3, no bias", {1, 128, 5, 6}, 8, 3, 1, 0, 1, false},
  };
  return c;
}

// conv2d with params.activation against conv2d, then the activation op: the same values and the
// same gradients. ReLU and ReLU6 bit for bit: the epilogue computes act(v + b) from the same
// float v + b the separate pass reads back, and backward runs the same activation_backward and
// conv kernels on the same y. Sigmoid and tanh use the same Cephes functions as the activation
// kernel (cpu_util.h); they came out bit-identical here too, but that rests on the compiler
// vectorising and contracting the polynomial alike in both loops, so they are held to the
// activation's float rounding instead.
TEST(Conv2dActivation, EpilogueEqualsSeparateActivation) {
  uint64_t seed = 7;
  for (cpu::ConvAlgorithm algo : kAlgorithms) {
    AlgorithmScope scope(algo);
    for (const EpilogueCase& c : epilogue_cases()) {
      for (Activation a :
           {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh}) {
        SCOPED_TRACE(c.name + ", " + activation_name(a) + ", " + algorithm_label(algo));
        Generator gen(++seed);
        const int64_t fan_in = c.x[1] / c.groups * c.k * c.k;
        // Pre-activations of a few units: relu6 clamps at both ends.
        Tensor x = Tensor::randn(c.x, gen);
        Tensor w = Tensor::randn({c.cout, c.x[1] / c.groups, c.k, c.k}, gen, 0.f,
                                 3.f / std::sqrt(static_cast<float>(fan_in)));
        Tensor b = c.bias ? Tensor::randn({c.cout}, gen) : Tensor();
        Conv2dParams p;
        p.stride_h = p.stride_w = c.stride;
        p.pad_h = p.pad_w = c.pad;
        p.groups = c.groups;
        Conv2dParams pa = p;
        pa.activation = a;

        Tensor x1 = x.clone().set_requires_grad(true), w1 = w.clone().set_requires_grad(true);
        Tensor b1 = c.bias ? b.clone().set_requires_grad(true) : Tensor();
        Tensor fused = conv2d(x1, w1, b1, pa);
        Tensor x2 = x.clone().set_requires_grad(true), w2 = w.clone().set_requires_grad(true);
        Tensor b2 = c.bias ? b.clone().set_requires_grad(true) : Tensor();
        Tensor separate = activation(a, conv2d(x2, w2, b2, p));
        const Tensor gy = Tensor::randn(fused.shape(), gen);
        fused.backward(gy);
        separate.backward(gy);
        if (a == Activation::ReLU || a == Activation::ReLU6) {
          EXPECT_TRUE(bitwise_equal(fused, separate));
          EXPECT_TRUE(bitwise_equal(x1.grad(), x2.grad()));
          EXPECT_TRUE(bitwise_equal(w1.grad(), w2.grad()));
          if (c.bias) {
            EXPECT_TRUE(bitwise_equal(b1.grad(), b2.grad()));
          }
        } else {
          // Float rounding of the activation (a few ulp of y), carried into the gradients by
          // sums of up to N*OH*OW*taps terms: relative to the largest gradient element.
          EXPECT_ALLCLOSE(fused, separate, 2.5e-7, 0);
          EXPECT_ALLCLOSE(x1.grad(), x2.grad(), 0, 1e-6 * max_abs(x2.grad()));
          EXPECT_ALLCLOSE(w1.grad(), w2.grad(), 0, 1e-6 * max_abs(w2.grad()));
          if (c.bias) {
            EXPECT_ALLCLOSE(b1.grad(), b2.grad(), 0, 1e-6 * max_abs(b2.grad()));
          }
        }
      }
    }
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
