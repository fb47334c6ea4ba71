// Pooling, batch norm and dropout. Pooling and batch norm against PyTorch (outputs, all
// gradients, running statistics; tolerance 1e-4 relative, except where a fixture case names a
// looser gx_tol and says why); dropout by its statistics and its mask's determinism, since
// PyTorch's RNG is not ours. Error cases name the op and the shapes.
#include <cmath>
#include <functional>
#include <limits>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/testing.h"

namespace engine {
namespace {
using testing::expect_error;
using testing::get;

constexpr double kTol = 1e-4;

// Runs each case of a pooling fixture: y = op(x, case), backward of sum(y * gy), compares y, gx.
void check_pool_fixture(const std::string& file,
                        const std::function<Tensor(const Tensor&, const nlohmann::json&)>& op) {
  Metadata meta;
  TensorMap fx = testing::load_fixture(file, &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = nlohmann::json::parse(meta.at("cases"));
  ASSERT_GT(cases.size(), 0u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(file + " case " + std::to_string(i) + " " + cases[i].dump());
    const std::string pre = "c" + std::to_string(i) + ".";
    Tensor x = get(fx, pre + "x").clone().set_requires_grad(true);
    Tensor y = op(x, cases[i]);
    EXPECT_CLOSE(y, get(fx, pre + "y"), kTol);
    y.backward(get(fx, pre + "gy"));
    EXPECT_CLOSE(x.grad(), get(fx, pre + "gx"), kTol);
  }
}

Pool2dParams pool_params(const nlohmann::json& c) {
  Pool2dParams p;
  p.kernel_h = c["k"][0], p.kernel_w = c["k"][1];
  p.stride_h = c["s"][0], p.stride_w = c["s"][1];
  p.pad_h = c["p"][0], p.pad_w = c["p"][1];
  p.ceil_mode = c["ceil"];
  if (c.contains("cip")) p.count_include_pad = c["cip"];
  return p;
}

TEST(ParityMaxPool2d, ForwardAndGradientMatchPyTorch) {
  // Includes inputs of small integers, where equal maxima make the tie rule visible in dx.
  check_pool_fixture("max_pool2d.safetensors", [](const Tensor& x, const nlohmann::json& c) {
    return max_pool2d(x, pool_params(c));
  });
}

TEST(ParityAvgPool2d, ForwardAndGradientMatchPyTorch) {
  check_pool_fixture("avg_pool2d.safetensors", [](const Tensor& x, const nlohmann::json& c) {
    return avg_pool2d(x, pool_params(c));
  });
}

TEST(ParityAdaptiveAvgPool2d, ForwardAndGradientMatchPyTorch) {
  check_pool_fixture("adaptive_avg_pool2d.safetensors",
                     [](const Tensor& x, const nlohmann::json& c) {
                       return adaptive_avg_pool2d(x, c["out"][0], c["out"][1]);
                     });
}

TEST(ParityBatchNorm, TrainAndEvalMatchPyTorch) {
  Metadata meta;
  TensorMap fx = testing::load_fixture("batch_norm.safetensors", &meta);
  ASSERT_FALSE(fx.empty());
  auto cases = nlohmann::json::parse(meta.at("cases"));
  ASSERT_GT(cases.size(), 0u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("batch_norm case " + std::to_string(i) + " " + cases[i].dump());
    const auto& c = cases[i];
    const std::string pre = "c" + std::to_string(i) + ".";
    const bool affine = c["affine"], running = c["running"];
    Tensor x = get(fx, pre + "x").clone().set_requires_grad(true);
    Tensor w = affine ? get(fx, pre + "w").clone().set_requires_grad(true) : Tensor();
    Tensor b = affine ? get(fx, pre + "b").clone().set_requires_grad(true) : Tensor();
    Tensor rm = running ? get(fx, pre + "rm0").clone() : Tensor();
    Tensor rv = running ? get(fx, pre + "rv0").clone() : Tensor();
    Tensor y = batch_norm(x, w, b, rm, rv, c["training"], c["momentum"].get<float>(),
                          c["eps"].get<float>());
    EXPECT_CLOSE(y, get(fx, pre + "y"), kTol);
    if (running) {
      EXPECT_CLOSE(rm, get(fx, pre + "rm1"), kTol);
      EXPECT_CLOSE(rv, get(fx, pre + "rv1"), kTol);
    }
    y.backward(get(fx, pre + "gy"));
    EXPECT_CLOSE(x.grad(), get(fx, pre + "gx"), c.value("gx_tol", kTol));
    if (affine) {
      EXPECT_CLOSE(w.grad(), get(fx, pre + "gw"), kTol);
      EXPECT_CLOSE(b.grad(), get(fx, pre + "gb"), kTol);
    }
  }
}

TEST(MaxPool2d, PaddingActsAsMinusInfinity) {
  // All inputs negative: a zero-padded max would return 0 at the borders.
  Tensor x = Tensor::full({1, 2, 5, 5}, -3.f);
  Pool2dParams p;
  p.kernel_h = p.kernel_w = 3, p.pad_h = p.pad_w = 1, p.stride_h = p.stride_w = 2;
  Tensor y = max_pool2d(x, p);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 3, 3}));
  EXPECT_EQ(y.to_vector(), std::vector<float>(18, -3.f));
}

TEST(MaxPool2d, NaNPropagatesAndTakesTheGradient) {
  // PyTorch's rule: a NaN in the window is the maximum (the last NaN, if several).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x =
      Tensor::from_vector({1, 1, 2, 4}, {1, nan, 5, 6, 3, 2, nan, nan}).set_requires_grad(true);
  Tensor y = max_pool2d(x, Pool2dParams{});
  const auto yv = y.to_vector();
  ASSERT_EQ(yv.size(), 2u);
  EXPECT_TRUE(std::isnan(yv[0]));
  EXPECT_TRUE(std::isnan(yv[1]));
  y.backward(Tensor::from_vector({1, 1, 1, 2}, {1, 2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 1, 0, 0, 0, 0, 0, 2}));
}

TEST(BatchNorm, EvalBackwardUsesStatisticsOfItsForward) {
  // A training-mode call between forward and backward updates the running buffers in place; the
  // eval-mode gradient must still use the statistics its forward normalised with.
  Generator gen(11);
  Tensor x = Tensor::randn({2, 3, 4, 4}, gen).set_requires_grad(true);
  Tensor w = Tensor::rand({3}, gen, 0.5f, 1.5f);
  Tensor rm = Tensor::randn({3}, gen), rv = Tensor::rand({3}, gen, 0.5f, 1.5f);
  Tensor gy = Tensor::randn({2, 3, 4, 4}, gen);
  const auto rv0 = rv.to_vector();
  batch_norm(x, w, Tensor(), rm, rv, false).backward(gy);
  Tensor expected = x.grad().clone();
  x.zero_grad();
  Tensor y = batch_norm(x, w, Tensor(), rm, rv, false);
  batch_norm(Tensor::randn({4, 3, 2, 2}, gen, 5.f, 3.f), w, Tensor(), rm, rv, true);
  EXPECT_NE(rv.to_vector(), rv0);
  y.backward(gy);
  EXPECT_EQ(x.grad().to_vector(), expected.to_vector());
}

TEST(BatchNorm, NoGradInputsRecordNothing) {
  Generator gen(12);
  Tensor x = Tensor::randn({2, 3, 4, 4}, gen);
  Tensor rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.f);
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, true);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_FALSE(y.grad_fn());
}

// ---- dropout ----

// The mask the dropout contract defines for element i of a draw at (seed, offset).
bool kept(uint64_t seed, uint64_t offset, int64_t i, float p) {
  return Philox::uniform(seed, offset, static_cast<uint64_t>(i)) >= p;
}

TEST(Dropout, KeepsAboutOneMinusPAndScales) {
  Generator data_gen(1);
  const int64_t n = 1 << 20;
  Tensor x = Tensor::rand({1024, 1024}, data_gen, 0.5f, 1.5f);
  const auto xv = x.to_vector();
  for (float p : {0.1f, 0.3f, 0.5f, 0.9f}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    Generator gen(42);
    const auto yv = dropout(x, p, true, gen).to_vector();
    int64_t kept_count = 0, bad_scale = 0;
    const float scale = 1.f / (1.f - p);
    for (int64_t i = 0; i < n; ++i) {
      if (yv[i] != 0.f) {
        ++kept_count;
        if (std::abs(yv[i] - xv[i] * scale) > 1e-6f * std::abs(xv[i] * scale)) ++bad_scale;
      }
    }
    // Binomial standard deviation is at most 5e-4 here; 3e-3 is six of them.
    EXPECT_NEAR(static_cast<double>(kept_count) / n, 1.0 - p, 3e-3);
    EXPECT_EQ(bad_scale, 0);
    EXPECT_EQ(gen.offset(), static_cast<uint64_t>(n));
  }
}

TEST(Dropout, MaskIsPhiloxOfSeedAndOffset) {
  // Unaligned offsets and sizes exercise the partial first and last Philox blocks, and the large
  // size the parallel path.
  for (int64_t n : {1, 3, 5, 17, 1001, 70001}) {
    for (uint64_t skip : {0, 1, 2, 3, 6}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", offset = " + std::to_string(skip));
      Generator gen(5);
      gen.reserve(skip);
      Tensor x = Tensor::full({n}, 2.f);
      const float p = 0.4f;
      const auto yv = dropout(x, p, true, gen).to_vector();
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float want = kept(5, skip, i, p) ? 2.f / (1.f - p) : 0.f;
        if (yv[i] != want) ++mismatches;
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST(Dropout, BackwardRegeneratesTheForwardMask) {
  Generator data_gen(2);
  Tensor x = Tensor::rand({8, 33, 17}, data_gen, 0.5f, 1.5f).set_requires_grad(true);
  Tensor gy = Tensor::rand({8, 33, 17}, data_gen, 0.5f, 1.5f);
  Generator gen(9);
  gen.reserve(7);
  const float p = 0.25f;
  Tensor y = dropout(x, p, true, gen);
  y.backward(gy);
  const auto yv = y.to_vector(), gxv = x.grad().to_vector(), gyv = gy.to_vector();
  int64_t mismatches = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    const float want = yv[i] != 0.f ? gyv[i] * (1.f / (1.f - p)) : 0.f;
    if (std::abs(gxv[i] - want) > 1e-6f * std::abs(want)) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Dropout, SameSeedAndOffsetGiveTheSameMask) {
  Generator data_gen(3);
  Tensor x = Tensor::randn({4, 100}, data_gen);
  Generator a(123), b(123);
  const auto ya = dropout(x, 0.5f, true, a).to_vector();
  EXPECT_EQ(ya, dropout(x, 0.5f, true, b).to_vector());
  // The generator moved on: the next draw is a different mask.
  EXPECT_NE(ya, dropout(x, 0.5f, true, a).to_vector());
  Generator c(124);
  EXPECT_NE(ya, dropout(x, 0.5f, true, c).to_vector());
}

TEST(Dropout, EvalAndZeroPAreIdentityAndOneGivesZeros) {
  Generator data_gen(4);
  Tensor x = Tensor::randn({3, 5}, data_gen).set_requires_grad(true);
  Generator gen(1);
  EXPECT_TRUE(dropout(x, 0.5f, false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.f, true, gen).same(x));
  EXPECT_EQ(gen.offset(), 0u);
  Tensor y = dropout(x, 1.f, true, gen);
  EXPECT_EQ(y.to_vector(), std::vector<float>(15, 0.f));
  y.backward(Tensor::full({3, 5}, 1.f));
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(15, 0.f));
}

// ---- errors ----

TEST(ShapeErrors, PoolingNamesOpAndShapes) {
  Tensor x = Tensor::zeros({2, 3, 8, 8});
  Pool2dParams p;
  for (const char* name : {"max_pool2d", "avg_pool2d"}) {
    SCOPED_TRACE(name);
    const std::string op = name;
    auto pool = [&](const Tensor& t, const Pool2dParams& q) {
      return op == "max_pool2d" ? max_pool2d(t, q) : avg_pool2d(t, q);
    };
    expect_error([&] { pool(Tensor::zeros({3, 8, 8}), p); }, {op, "4-D", "[3, 8, 8]"});
    Pool2dParams bad = p;
    bad.stride_w = 0;
    expect_error([&] { pool(x, bad); }, {op, "stride", "[2, 3, 8, 8]"});
    bad = p;
    bad.kernel_h = 0;
    expect_error([&] { pool(x, bad); }, {op, "kernel", "[2, 3, 8, 8]"});
    bad = p;
    bad.pad_h = -1;
    expect_error([&] { pool(x, bad); }, {op, "padding", "[2, 3, 8, 8]"});
    bad = p;
    bad.pad_w = 2;  // more than half of kernel 2
    expect_error([&] { pool(x, bad); }, {op, "padding", "[2, 3, 8, 8]"});
    bad = p;
    bad.kernel_h = bad.kernel_w = 9;
    expect_error([&] { pool(x, bad); }, {op, "[2, 3, 8, 8]"});
    expect_error(
        [&] {
          pool(Tensor::zeros({2, 3, 8, 8}, DType::I64), p);
        },
        {op, "f32", "[2, 3, 8, 8]"});
    expect_error([&] { pool(Tensor::zeros({2, 0, 8, 8}), p); }, {op, "[2, 0, 8, 8]"});
  }
  expect_error(
      [&] {
        adaptive_avg_pool2d(Tensor::zeros({3, 8}), 1, 1);
      },
      {"adaptive_avg_pool2d", "[3, 8]"});
  expect_error([&] { adaptive_avg_pool2d(x, 0, 2); }, {"adaptive_avg_pool2d", "[2, 3, 8, 8]"});
  expect_error([&] { adaptive_avg_pool2d(x, 2, -1); }, {"adaptive_avg_pool2d", "[2, 3, 8, 8]"});
}

TEST(ShapeErrors, BatchNormNamesOpAndShapes) {
  Tensor x = Tensor::zeros({2, 3, 4, 4});
  Tensor c3 = Tensor::zeros({3}), c4 = Tensor::zeros({4});
  const std::string op = "batch_norm";
  expect_error([&] { batch_norm(x, c4, c3, c3, c3, true); }, {op, "weight", "[4]", "[2, 3, 4, 4]"});
  expect_error([&] { batch_norm(x, c3, c4, c3, c3, true); }, {op, "bias", "[4]", "[2, 3, 4, 4]"});
  expect_error([&] { batch_norm(x, c3, c3, c4, c3, false); },
               {op, "running_mean", "[4]", "[2, 3, 4, 4]"});
  expect_error(
      [&] {
        batch_norm(x, c3, c3, c3, Tensor::zeros({3, 1}), false);
      },
      {op, "running_var", "[3, 1]", "[2, 3, 4, 4]"});
  expect_error([&] { batch_norm(Tensor::zeros({6}), Tensor(), Tensor(), c3, c3, true); },
               {op, "[6]"});
  expect_error(
      [&] {
        batch_norm(Tensor::zeros({2, 3, 4, 4, 2}), Tensor(), Tensor(), c3, c3, true);
      },
      {op, "[2, 3, 4, 4, 2]"});
  // PyTorch's rule: a channel of one value has no variance to normalise by.
  expect_error(
      [&] {
        batch_norm(Tensor::zeros({1, 3}), c3, c3, c3, c3, true);
      },
      {op, "more than 1 value per channel", "[1, 3]"});
  expect_error(
      [&] {
        batch_norm(Tensor::zeros({1, 3, 1, 1}), c3, c3, c3, c3, true);
      },
      {op, "more than 1 value per channel", "[1, 3, 1, 1]"});
  EXPECT_NO_THROW(batch_norm(Tensor::zeros({1, 3}), c3, c3, c3, Tensor::full({3}, 1.f), false));
  expect_error([&] { batch_norm(x, c3, c3, Tensor(), Tensor(), false); },
               {op, "eval", "[2, 3, 4, 4]"});
  expect_error(
      [&] {
        batch_norm(Tensor::zeros({2, 3, 4, 4}, DType::I64), c3, c3, c3, c3, true);
      },
      {op, "f32", "[2, 3, 4, 4]"});
  expect_error([&] { batch_norm(x, c3, c3, c3, c3, true, 0.1f, -1e-5f); },
               {op, "eps", "[2, 3, 4, 4]"});
  expect_error([&] { batch_norm(x, c3, c3, c3, c3, true, 1.5f); },
               {op, "momentum", "[2, 3, 4, 4]"});
}

TEST(ShapeErrors, DropoutNamesOpAndShapes) {
  Tensor x = Tensor::zeros({2, 5});
  Generator gen(0);
  for (float p : {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    expect_error([&] { dropout(x, p, true, gen); }, {"dropout", "p must be in [0, 1]", "[2, 5]"});
    // A bad p is an error whether or not the module is training.
    expect_error([&] { dropout(x, p, false, gen); }, {"dropout", "[2, 5]"});
  }
  expect_error(
      [&] {
        dropout(Tensor::zeros({2, 5}, DType::I64), 0.5f, true, gen);
      },
      {"dropout", "f32", "[2, 5]"});
  EXPECT_EQ(gen.offset(), 0u);
}

}  // namespace
}  // namespace engine
