// The comparison and error helpers of tests/testing.h held to what their header promises: every
// tier's tolerances mean something only if rel_err, allclose and cosine fail on a NaN or infinity
// on either side, on a shape mismatch, and on one bad element among good ones.
#include <gtest/gtest-spi.h>

#include <cmath>
#include <limits>

#include "tests/testing.h"

namespace engine {
namespace {

using testing::allclose;
using testing::cosine;
using testing::expect_error;
using testing::rel_err;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Tensor vec(std::vector<float> v) {
  const auto n = static_cast<int64_t>(v.size());
  return Tensor::from_vector({n}, std::move(v));
}

TEST(TestingHelpers, RelErrIsMaxDifferenceOverMaxReference) {
  EXPECT_EQ(rel_err(vec({1, -2, 4}), vec({1, -2, 4})), 0.0);
  // max|diff| = 0.5 (at the last element), max|ref| = 4.
  EXPECT_DOUBLE_EQ(rel_err(vec({1.25f, -2, 3.5f}), vec({1, -2, 4})), 0.5 / 4);
  // A reference of zeros divides by 1, not by 0.
  EXPECT_DOUBLE_EQ(rel_err(vec({0, 0.5f}), vec({0, 0})), 0.5);
  EXPECT_EQ(rel_err(vec({0, 0}), vec({0, 0})), 0.0);
}

TEST(TestingHelpers, RelErrIsInfiniteForNanOrInfinityOnEitherSide) {
  EXPECT_EQ(rel_err(vec({1, kNan, 3}), vec({1, 2, 3})), INFINITY);
  EXPECT_EQ(rel_err(vec({1, 2, 3}), vec({1, kNan, 3})), INFINITY);
  EXPECT_EQ(rel_err(vec({kNan}), vec({kNan})), INFINITY);
  EXPECT_EQ(rel_err(vec({1, kInf}), vec({1, 2})), INFINITY);
  EXPECT_EQ(rel_err(vec({1, 2}), vec({1, -kInf})), INFINITY);
  EXPECT_EQ(rel_err(vec({kInf}), vec({kInf})), INFINITY);
}

TEST(TestingHelpers, RelErrFailsTheTestOnAShapeMismatch) {
  // Same element count, other shape: still a mismatch.
  const Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = Tensor::from_vector({3, 2}, {1, 2, 3, 4, 5, 6});
  double err = 0;
  EXPECT_NONFATAL_FAILURE(err = rel_err(a, b), "[2, 3] compared with reference shape [3, 2]");
  EXPECT_EQ(err, INFINITY);
}

TEST(TestingHelpers, ExpectCloseFailsOnNanInTheReference) {
  EXPECT_NONFATAL_FAILURE(EXPECT_CLOSE(vec({1, 2}), vec({1, kNan}), 1.0), "comparing");
  EXPECT_CLOSE(vec({1, 2}), vec({1, 2.0001f}), 1e-4);
}

TEST(TestingHelpers, AllcloseHoldsEachElementToAtolPlusRtolTimesReference) {
  EXPECT_TRUE(allclose(vec({1, 2, 3}), vec({1, 2, 3}), 0, 0));
  // |ours - ref| <= atol + rtol |ref|: 0.1 <= 0.05 + 0.01 * 10 passes, 0.2 does not.
  EXPECT_TRUE(allclose(vec({10.1f}), vec({10}), 0.01, 0.05));
  EXPECT_FALSE(allclose(vec({10.2f}), vec({10}), 0.01, 0.05));
  // One wrong small element among large ones fails, though a norm-wise error would pass it.
  const auto r = allclose(vec({1000, 1e-3f, 1000}), vec({1000, 2e-3f, 1000}), 1e-4, 1e-6);
  EXPECT_FALSE(r);
  EXPECT_LT(rel_err(vec({1000, 1e-3f, 1000}), vec({1000, 2e-3f, 1000})), 1e-4);
  EXPECT_NE(std::string(r.message()).find("1 of 3 elements"), std::string::npos) << r.message();
  EXPECT_NE(std::string(r.message()).find("flat index 1"), std::string::npos) << r.message();
  // Zeros on both sides are equal at any tolerance, zero tolerance included.
  EXPECT_TRUE(allclose(vec({0, 0}), vec({0, 0}), 0, 0));
}

TEST(TestingHelpers, AllcloseFailsOnNanOnEitherSideAndOnMismatchedInfinities) {
  EXPECT_FALSE(allclose(vec({1, kNan}), vec({1, 2}), 1, 1));
  EXPECT_FALSE(allclose(vec({1, 2}), vec({1, kNan}), 1, 1));
  EXPECT_FALSE(allclose(vec({kNan}), vec({kNan}), 1, 1));
  EXPECT_FALSE(allclose(vec({kInf}), vec({1}), 1, 1));
  EXPECT_FALSE(allclose(vec({1}), vec({kInf}), 1, 1));
  EXPECT_FALSE(allclose(vec({kInf}), vec({-kInf}), 1, 1));
  // The same infinity on both sides is equal, as in numpy.allclose.
  EXPECT_TRUE(allclose(vec({-kInf, 1}), vec({-kInf, 1}), 0, 0));
  EXPECT_NONFATAL_FAILURE(EXPECT_ALLCLOSE(vec({1, 2}), vec({kNan, 2}), 1, 1), "comparing");
}

TEST(TestingHelpers, AllcloseFailsOnAShapeMismatch) {
  const auto r = allclose(Tensor::from_vector({2, 2}, {1, 2, 3, 4}), vec({1, 2, 3, 4}), 1, 1);
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("[2, 2] vs reference [4]"), std::string::npos)
      << r.message();
}

TEST(TestingHelpers, CosineOfDirections) {
  EXPECT_NEAR(cosine(vec({1, 2, 3}), vec({2, 4, 6})), 1.0, 1e-12);
  EXPECT_NEAR(cosine(vec({1, 2, 3}), vec({-1, -2, -3})), -1.0, 1e-12);
  EXPECT_NEAR(cosine(vec({1, 0}), vec({0, 3})), 0.0, 1e-12);
  EXPECT_NEAR(cosine(vec({1, 1}), vec({1, 0})), std::sqrt(0.5), 1e-12);
  EXPECT_EQ(cosine(vec({0, 0}), vec({0, 0})), 1.0);
  EXPECT_EQ(cosine(vec({0, 0}), vec({1, 0})), 0.0);
  EXPECT_EQ(cosine(vec({1, 0}), vec({0, 0})), 0.0);
}

TEST(TestingHelpers, CosineIsNanForNonFiniteOrMismatchedSizes) {
  // NaN compares false with everything, so a `cosine(...) >= bound` check fails.
  EXPECT_TRUE(std::isnan(cosine(vec({1, kNan}), vec({1, 2}))));
  EXPECT_TRUE(std::isnan(cosine(vec({1, 2}), vec({1, kNan}))));
  EXPECT_TRUE(std::isnan(cosine(vec({kInf, 2}), vec({1, 2}))));
  EXPECT_TRUE(std::isnan(cosine(vec({1, 2}), vec({1, -kInf}))));
  EXPECT_TRUE(std::isnan(cosine(vec({1, 2}), vec({1, 2, 3}))));
}

TEST(TestingHelpers, ExpectErrorWantsAnEngineErrorNamingEveryPart) {
  expect_error([] { throw Error("conv2d: input [1, 2] is not 4-D"); }, {"conv2d", "[1, 2]"});
  EXPECT_NONFATAL_FAILURE(expect_error([] {}, {"conv2d"}), "no engine::Error thrown");
  EXPECT_NONFATAL_FAILURE(
      expect_error([] { throw Error("conv2d: input [1, 2] is not 4-D"); }, {"conv2d", "[3]"}),
      "'[3]' not in: conv2d: input [1, 2] is not 4-D");
  // Another exception type is not the engine's error: it reaches the test, not the helper.
  EXPECT_THROW(expect_error([] { throw std::runtime_error("other"); }, {"other"}),
               std::runtime_error);
}

}  // namespace
}  // namespace engine
