// Autograd core: accumulation, shared subexpressions, no-grad scopes, frozen parameters, views.
#include <cstring>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/testing.h"

namespace engine {
namespace {

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor w = Tensor::from_vector({2, 2}, {1, 2, 3, 4}).set_requires_grad(true);
  Tensor x = Tensor::from_vector({1, 2}, {1, 1});
  Tensor gy = Tensor::from_vector({1, 2}, {1, 1});
  linear(x, w, Tensor()).backward(gy);
  linear(x, w, Tensor()).backward(gy);
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{2, 2, 2, 2}));
  w.zero_grad();
  EXPECT_FALSE(w.grad().defined());
}

TEST(Autograd, SharedInputSumsBothPaths) {
  // h = W x feeds two paths, y = 2 h and z = 5 h, and loss = y + z: dL/dh = 2 + 5, so
  // dW = 7 x = {35, 49}. Either path alone would give 2 x = {10, 14} or 5 x = {25, 35}.
  Tensor w = Tensor::from_vector({1, 2}, {2, 3}).set_requires_grad(true);
  Tensor x = Tensor::from_vector({1, 2}, {5, 7});
  Tensor h = linear(x, w, Tensor());  // [1,1] = 31
  Tensor y = linear(h, Tensor::from_vector({1, 1}, {2}), Tensor());
  Tensor z = linear(h.reshape({1, 1}), Tensor::from_vector({1, 1}, {5}), Tensor());
  Tensor loss = add(y, z);
  EXPECT_EQ(loss.to_vector(), (std::vector<float>{7 * 31}));
  loss.backward(Tensor::from_vector({1, 1}, {1}));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{35, 49}));
}

// Module::set_backend runs a layer's forward under a BackendScope; its backward must run on the
// same backend, though backward is called after the scope has closed.
TEST(Autograd, BackwardRunsUnderTheBackendItsForwardRecorded) {
  Tensor w = Tensor::from_vector({1, 2}, {2, 3}).set_requires_grad(true);
  std::vector<std::optional<Backend>> seen;
  auto traced = [&](const Tensor& x) {
    Tensor y = linear(x, w, Tensor());
    Tensor out = y.detach();
    autograd::record("trace", out, {&y}, [&seen](const Tensor& g, const std::vector<bool>&) {
      seen.push_back(backend_override());
      return std::vector<Tensor>{g};
    });
    return out;
  };
  Tensor x = Tensor::from_vector({1, 2}, {5, 7});
  Tensor y1;
  {
    BackendScope scope(Backend::Native);
    y1 = traced(x);
  }
  Tensor y2 = traced(x);  // no scope
  EXPECT_FALSE(backend_override().has_value());
  y1.backward(Tensor::from_vector({1, 1}, {1}));
  y2.backward(Tensor::from_vector({1, 1}, {1}));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::optional<Backend>(Backend::Native));
  EXPECT_FALSE(seen[1].has_value());
  EXPECT_FALSE(backend_override().has_value());  // the scope ended with the node
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{10, 14}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor w = Tensor::from_vector({1, 2}, {2, 3}).set_requires_grad(true);
  Tensor x = Tensor::from_vector({1, 2}, {5, 7});
  autograd::NoGradGuard g;
  Tensor y = linear(x, w, Tensor());
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, FrozenSubgraphIsNeverVisited) {
  // A frozen "backbone" of three linears feeding a trainable head: backward runs the head only.
  Generator gen(3);
  Tensor x = Tensor::randn({4, 8}, gen);
  std::vector<Tensor> frozen;
  for (int i = 0; i < 3; ++i) frozen.push_back(Tensor::randn({8, 8}, gen));
  Tensor head = Tensor::randn({2, 8}, gen).set_requires_grad(true);
  Tensor h = x;
  for (auto& w : frozen) h = linear(h, w, Tensor());
  EXPECT_FALSE(h.requires_grad());
  EXPECT_FALSE(h.grad_fn());
  Tensor y = linear(h, head, Tensor());
  autograd::stats().nodes_run = 0;
  y.backward(Tensor::full({4, 2}, 1.f));
  EXPECT_EQ(autograd::stats().nodes_run, 1u);
  EXPECT_TRUE(head.grad().defined());
  for (auto& w : frozen) {
    EXPECT_FALSE(w.grad().defined());
  }
}

TEST(Autograd, ReshapeIsAViewWithGradient) {
  Tensor w = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}).set_requires_grad(true);
  Tensor v = w.reshape({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_EQ(v.raw_data(), w.raw_data());
  v.backward(Tensor::full({3, 2}, 2.f));
  EXPECT_EQ(w.grad().to_vector(), std::vector<float>(6, 2.f));
  EXPECT_THROW(w.reshape({4, 2}), Error);
  EXPECT_THROW(w.reshape({-1, -1}), Error);
}

TEST(Autograd, BackwardChecksSeedShape) {
  Tensor w = Tensor::from_vector({2, 2}, {1, 2, 3, 4}).set_requires_grad(true);
  Tensor y = linear(Tensor::from_vector({1, 2}, {1, 1}), w, Tensor());
  EXPECT_THROW(y.backward(Tensor::zeros({2, 2})), Error);
  EXPECT_THROW(y.backward(), Error);  // two elements: no implicit seed
}

TEST(Random, PhiloxIsAFunctionOfSeedAndCounter) {
  EXPECT_EQ(Philox::uniform(7, 10, 3), Philox::uniform(7, 13, 0));
  EXPECT_NE(Philox::uniform(7, 10, 3), Philox::uniform(8, 10, 3));
  Generator a(5), b(5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.normal(), b.normal());
  // Known-answer test from the Philox paper's reference (Random123 kat_vectors, philox4x32_10,
  // counter 0, key 0): 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  auto blk = Philox::block(0, 0, 0);
  EXPECT_EQ(blk[0], 0x6627e8d5u);
  EXPECT_EQ(blk[1], 0xe169c58du);
  EXPECT_EQ(blk[2], 0xbc57ac4cu);
  EXPECT_EQ(blk[3], 0x9b00dbd8u);
}

// The bulk draws (parallel above 32,768 elements) give exactly the numbers of one call at a time,
// and leave the generator where those calls would: initial weights do not depend on threads.
TEST(Random, BulkDrawsEqualOneAtATime) {
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(100003)}) {
    Generator bulk(11), one(11);
    (void)bulk.uniform(), (void)one.uniform();  // an odd start offset
    std::vector<float> z(static_cast<size_t>(n)), u(static_cast<size_t>(n));
    bulk.fill_normal(z.data(), n);
    bulk.fill_uniform(u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float want = one.normal();
      ASSERT_EQ(std::memcmp(&z[size_t(i)], &want, sizeof want), 0) << "normal " << i << " of " << n;
    }
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(u[size_t(i)], one.uniform()) << "uniform " << i;
    EXPECT_EQ(bulk.offset(), one.offset());
    EXPECT_EQ(bulk.normal(), one.normal());
  }
}

}  // namespace
}  // namespace engine
