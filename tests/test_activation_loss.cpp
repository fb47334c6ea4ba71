// Activations, add, concat, flatten and cross_entropy against PyTorch (outputs and the gradients
// of sum(y * gy) for a random gy, tolerance 1e-4 relative to max|ref|; the kinks of relu and relu6
// to 1e-6), their autograd wiring, and the errors they raise on bad arguments.
#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/testing.h"

namespace engine {
namespace {
using testing::expect_error;
using testing::get;

constexpr double kTol = 1e-4;

Tensor param(const TensorMap& fx, const std::string& key) {
  return get(fx, key).clone().set_requires_grad(true);
}

nlohmann::json cases_of(const Metadata& meta) { return nlohmann::json::parse(meta.at("cases")); }

Activation activation_of(const std::string& kind) {
  for (Activation a : {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh})
    if (kind == activation_name(a)) return a;
  ADD_FAILURE() << "unknown activation " << kind;
  return Activation::ReLU;
}

TEST(ParityActivation, ForwardAndGradientsMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("activation.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = cases_of(meta);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("activation case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    const Activation a = activation_of(cases[i]["kind"]);
    // Exact kinks (0, -0, 6) must land on PyTorch's side: their gradients are 0 or gy exactly.
    const double tol = cases[i]["kinks"] ? 1e-6 : kTol;
    Tensor x = param(fx, pre + "x");
    Tensor y = activation(a, x);
    EXPECT_CLOSE(y, get(fx, pre + "y"), tol);
    y.backward(get(fx, pre + "gy"));
    EXPECT_CLOSE(x.grad(), get(fx, pre + "gx"), tol);
  }
}

TEST(ParityActivation, NamedFunctionsMatchActivationKind) {
  Generator gen(5);
  Tensor x = Tensor::randn({3, 4}, gen, 0.f, 4.f);
  EXPECT_EQ(relu(x).to_vector(), activation(Activation::ReLU, x).to_vector());
  EXPECT_EQ(relu6(x).to_vector(), activation(Activation::ReLU6, x).to_vector());
  EXPECT_EQ(sigmoid(x).to_vector(), activation(Activation::Sigmoid, x).to_vector());
  EXPECT_EQ(tanh(x).to_vector(), activation(Activation::Tanh, x).to_vector());
}

TEST(ParityActivation, NanPropagatesAndInfinitiesSaturate) {
  // As in PyTorch: NaN in, NaN out; the limits at +-inf are exact.
  Tensor x = Tensor::from_vector({3}, {NAN, INFINITY, -INFINITY});
  const std::vector<std::vector<float>> limits = {
      {0, INFINITY, 0}, {0, 6, 0}, {0, 1, 0}, {0, 1, -1}};
  int k = 0;
  for (Activation a :
       {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh}) {
    auto y = activation(a, x).to_vector();
    EXPECT_TRUE(std::isnan(y[0])) << activation_name(a);
    EXPECT_EQ(y[1], limits[k][1]) << activation_name(a);
    EXPECT_EQ(y[2], limits[k][2]) << activation_name(a);
    ++k;
  }
}

TEST(ParityAdd, ForwardAndGradientsMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("add.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = cases_of(meta);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("add case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    Tensor a = param(fx, pre + "a"), b = param(fx, pre + "b");
    Tensor y = add(a, b);
    EXPECT_CLOSE(y, get(fx, pre + "y"), kTol);
    y.backward(get(fx, pre + "gy"));
    EXPECT_CLOSE(a.grad(), get(fx, pre + "ga"), kTol);
    EXPECT_CLOSE(b.grad(), get(fx, pre + "gb"), kTol);
  }
}

TEST(ParityConcat, ForwardAndGradientsMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("concat.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = cases_of(meta);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("concat case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    std::vector<Tensor> xs;
    for (int j = 0; j < cases[i]["n"].get<int>(); ++j) {
      xs.push_back(get(fx, pre + "x" + std::to_string(j)).clone());
      xs.back().set_requires_grad(cases[i]["grad"][j].get<bool>());
    }
    Tensor y = concat(xs, cases[i]["dim"].get<int64_t>());
    EXPECT_CLOSE(y, get(fx, pre + "y"), kTol);
    y.backward(get(fx, pre + "gy"));
    for (size_t j = 0; j < xs.size(); ++j) {
      if (cases[i]["grad"][j].get<bool>()) {
        EXPECT_CLOSE(xs[j].grad(), get(fx, pre + "gx" + std::to_string(j)), kTol);
      } else {
        EXPECT_FALSE(xs[j].grad().defined()) << "input " << j << " wants no gradient";
      }
    }
  }
}

TEST(ParityFlatten, ForwardAndGradientsMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("flatten.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = cases_of(meta);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("flatten case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    Tensor x = param(fx, pre + "x");
    Tensor y = flatten(x, cases[i]["start"].get<int64_t>());
    EXPECT_EQ(y.raw_data(), x.raw_data()) << "flatten is a view";
    EXPECT_CLOSE(y, get(fx, pre + "y"), 0.0);
    y.backward(get(fx, pre + "gy"));
    EXPECT_CLOSE(x.grad(), get(fx, pre + "gx"), 0.0);
  }
}

TEST(ParityCrossEntropy, LossAndGradientMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("cross_entropy.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = cases_of(meta);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("cross_entropy case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    Tensor logits = param(fx, pre + "logits");
    CrossEntropyOptions opt;
    opt.label_smoothing = cases[i]["label_smoothing"].get<float>();
    if (cases[i]["weighted"].get<bool>()) opt.weight = get(fx, pre + "weight").clone();
    Tensor targets = get(fx, pre + "targets");
    Tensor loss = cross_entropy(logits, targets, opt);
    EXPECT_EQ(loss.shape(), Shape{}) << "the mean loss is a scalar";
    EXPECT_CLOSE(loss.reshape({1}), get(fx, pre + "loss"), kTol);
    loss.backward(get(fx, pre + "gy").reshape({}));
    EXPECT_CLOSE(logits.grad(), get(fx, pre + "glogits"), kTol);
  }
}

TEST(CrossEntropy, OnlyLogitsGetAGradient) {
  Tensor logits = Tensor::from_vector({2, 3}, {1, 2, 3, 3, 2, 1}).set_requires_grad(true);
  Tensor weight = Tensor::from_vector({3}, {1, 2, 3}).set_requires_grad(true);
  Tensor loss = cross_entropy(logits, Tensor::from_vector_i64({2}, {0, 2}), {weight, 0.1f});
  loss.backward();
  EXPECT_TRUE(logits.grad().defined());
  EXPECT_FALSE(weight.grad().defined());
  // Frozen logits: nothing records, even with a weight that asks for grad.
  Tensor frozen = Tensor::from_vector({1, 3}, {1, 2, 3});
  EXPECT_FALSE(
      cross_entropy(frozen, Tensor::from_vector_i64({1}, {1}), {weight, 0.f}).requires_grad());
}

TEST(Autograd, AddOfATensorWithItselfDoublesTheGradient) {
  Tensor x = Tensor::from_vector({2, 2}, {1, 2, 3, 4}).set_requires_grad(true);
  Tensor gy = Tensor::from_vector({2, 2}, {1, -1, 2, 0.5f});
  add(x, x).backward(gy);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, -2, 4, 1}));
  EXPECT_EQ(gy.to_vector(), (std::vector<float>{1, -1, 2, 0.5f})) << "seed must not be modified";
}

TEST(Autograd, ResidualBlockSumsBothPaths) {
  // y = relu(x) + x: dy/dx = gy * (x > 0) + gy.
  Tensor x = Tensor::from_vector({4}, {-2, 0, 1, 3}).set_requires_grad(true);
  add(relu(x), x).backward(Tensor::full({4}, 1.f));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{1, 1, 2, 2}));
}

TEST(Autograd, ActivationWithoutGradRecordsNothing) {
  Tensor x = Tensor::from_vector({3}, {-1, 0, 1});
  Tensor y = relu(x);
  EXPECT_FALSE(y.requires_grad());
  Tensor w = Tensor::from_vector({3}, {-1, 0, 1}).set_requires_grad(true);
  autograd::NoGradGuard g;
  EXPECT_FALSE(sigmoid(w).requires_grad());
  EXPECT_FALSE(concat({w, x}, 0).requires_grad());
}

TEST(ShapeErrors, ActivationNamesOpAndShape) {
  Tensor ints = Tensor::from_vector_i64({2, 3}, {0, 1, 2, 3, 4, 5});
  for (Activation a : {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh})
    expect_error([&] { activation(a, ints); }, {activation_name(a), "[2, 3]", "i64"});
  expect_error([] { relu6(Tensor()); }, {"relu6", "undefined"});
}

TEST(ShapeErrors, AddNamesOpAndShapes) {
  expect_error(
      [] {
        add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}));
      },
      {"add: shapes [2, 3] and [3, 2] differ"});
  expect_error([] { add(Tensor::zeros({6}), Tensor::zeros({2, 3})); }, {"add", "[6]", "[2, 3]"});
  expect_error(
      [] {
        add(Tensor::zeros({2}), Tensor::from_vector_i64({2}, {1, 2}));
      },
      {"add", "i64", "[2]"});
}

TEST(ShapeErrors, ConcatNamesOpAndShapes) {
  Tensor a = Tensor::zeros({2, 3, 4}), b = Tensor::zeros({2, 5, 4});
  expect_error([] { concat({}, 0); }, {"concat", "at least one"});
  expect_error(
      [&] {
        concat({a, Tensor::zeros({3, 5, 4})}, 1);
      },
      {"concat", "[2, 3, 4]", "[3, 5, 4]"});
  expect_error([&] { concat({a, b}, 0); }, {"concat", "[2, 3, 4]", "[2, 5, 4]", "dim 0"});
  expect_error([&] { concat({a, Tensor::zeros({2, 3})}, 0); }, {"concat", "[2, 3, 4]", "[2, 3]"});
  expect_error([&] { concat({a, b}, 3); }, {"concat", "dim 3", "[2, 3, 4]"});
  expect_error([&] { concat({a, b}, -4); }, {"concat", "dim -4"});
  expect_error([] { concat({Tensor::zeros({}), Tensor::zeros({})}, 0); }, {"concat", "[]"});
  expect_error(
      [&] {
        concat({a, Tensor::from_vector_i64({2, 1, 4}, {0, 0, 0, 0, 0, 0, 0, 0})}, 1);
      },
      {"concat", "i64", "[2, 1, 4]"});
  // Negative dims count from the end.
  EXPECT_EQ(concat({a, b}, -2).shape(), (Shape{2, 8, 4}));
}

TEST(ShapeErrors, FlattenNamesShape) {
  Tensor x = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(flatten(x, 1).shape(), (Shape{2, 12}));
  EXPECT_EQ(flatten(x, -1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(flatten(x, 0).shape(), (Shape{24}));
  expect_error([&] { flatten(x, 3); }, {"flatten", "[2, 3, 4]"});
  expect_error([&] { flatten(x, -4); }, {"flatten", "[2, 3, 4]"});
  expect_error([] { flatten(Tensor(), 1); }, {"flatten", "undefined"});
}

TEST(ShapeErrors, CrossEntropyNamesOpShapesAndTargets) {
  Tensor logits = Tensor::zeros({3, 4});
  Tensor t = Tensor::from_vector_i64({3}, {0, 3, 1});
  expect_error([&] { cross_entropy(Tensor::zeros({4}), t); }, {"cross_entropy", "[4]"});
  expect_error([&] { cross_entropy(Tensor::zeros({3, 4, 1}), t); }, {"cross_entropy", "[3, 4, 1]"});
  expect_error([&] { cross_entropy(logits, Tensor::zeros({3})); },
               {"cross_entropy", "i64", "f32", "[3]"});
  expect_error(
      [&] {
        cross_entropy(logits, Tensor::from_vector_i64({2}, {0, 1}));
      },
      {"cross_entropy", "[2]", "[3, 4]"});
  expect_error(
      [&] {
        cross_entropy(logits, Tensor::from_vector_i64({3, 1}, {0, 1, 2}));
      },
      {"cross_entropy", "[3, 1]", "[3, 4]"});
  expect_error(
      [&] {
        cross_entropy(logits, Tensor::from_vector_i64({3}, {0, 4, 1}));
      },
      {"cross_entropy", "target 4", "index 1", "4 classes"});
  expect_error(
      [&] {
        cross_entropy(logits, Tensor::from_vector_i64({3}, {0, 1, -1}));
      },
      {"cross_entropy", "target -1", "index 2", "4 classes"});
  expect_error(
      [&] {
        cross_entropy(logits, t, {Tensor::zeros({3}), 0.f});
      },
      {"cross_entropy", "weight [3]", "[3, 4]"});
  expect_error(
      [&] {
        cross_entropy(logits, t, {Tensor::zeros({1, 4}), 0.f});
      },
      {"cross_entropy", "[1, 4]"});
  expect_error(
      [&] {
        cross_entropy(logits, t, {Tensor(), -0.1f});
      },
      {"cross_entropy", "label_smoothing", "-0.1"});
  expect_error(
      [&] {
        cross_entropy(logits, t, {Tensor(), 1.5f});
      },
      {"cross_entropy", "label_smoothing", "1.5"});
  expect_error(
      [&] {
        cross_entropy(logits, t, {Tensor(), NAN});
      },
      {"cross_entropy", "label_smoothing"});
  expect_error(
      [&] {
        cross_entropy(Tensor::zeros({0, 4}), Tensor::from_vector_i64({0}, {}));
      },
      {"cross_entropy", "[0, 4]"});
  // Both ends of the smoothing range are valid.
  EXPECT_NO_THROW(cross_entropy(logits, t, {Tensor(), 0.f}));
  EXPECT_NO_THROW(cross_entropy(logits, t, {Tensor(), 1.f}));
}

}  // namespace
}  // namespace engine
