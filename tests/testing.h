// The test helper library of every tier (cpu, cuda, emu): fixtures written by tests/py/fx_*.py
// (engine_tests only), and one rule each for comparing and for expected errors, so every test
// means the same thing by "close":
//   - allclose(ours, ref, rtol, atol): element-wise |ours - ref| <= atol + rtol * |ref|; a NaN or
//     infinity on either side fails (unless both hold the same infinity), and the failure names the
//     first offending element and how many there are.
//   - rel_err(ours, ref): max|ours - ref| / max|ref| (1 when ref is all zeros); infinity when
//     either side has a NaN or infinity, or the shapes differ. The norm-wise rule the parity
//     tests state their tolerances in (EXPECT_CLOSE).
//   - cosine(a, b): cosine of the angle between two tensors seen as vectors; NaN when either side
//     has a non-finite element or the sizes differ, 1 when both are all zeros, 0 when one is.
//   - expect_error(f, {parts...}): f must throw engine::Error whose message contains every part.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"
#include "engine/tensor_io.h"

namespace engine::testing {

#ifdef ENGINE_FIXTURE_DIR
// Fixtures (engine_tests only): files written by tests/py/fx_*.py with PyTorch at test time.
inline std::string fixture_path(const std::string& name) {
  return std::string(ENGINE_FIXTURE_DIR) + "/" + name;
}

// Loads a fixture or fails the test with how to make it: parity tests never skip.
inline TensorMap load_fixture(const std::string& name, Metadata* meta = nullptr) {
  std::string path = fixture_path(name);
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << "fixture " << path << " is missing: it is written by the tests/py/fx_*.py "
                  << "scripts that ctest runs first (they need PyTorch: apt-get install "
                  << "python3-torch). Run the tests with ctest, not the test binary alone.";
    return {};
  }
  return load_tensors(path, meta);
}

inline const Tensor& get(const TensorMap& m, const std::string& key) {
  static Tensor undefined;
  auto it = m.find(key);
  if (it == m.end()) {
    ADD_FAILURE() << "fixture has no tensor '" << key << "'";
    return undefined;
  }
  return it->second;
}
#endif

inline double rel_err(const Tensor& ours, const Tensor& ref) {
  if (ours.shape() != ref.shape()) {
    ADD_FAILURE() << "shape " << shape_str(ours.shape()) << " compared with reference shape "
                  << shape_str(ref.shape());
    return INFINITY;
  }
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  double diff = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    mag = std::max(mag, std::abs(static_cast<double>(b[i])));
  }
  return diff / (mag > 0 ? mag : 1.0);
}

inline ::testing::AssertionResult allclose(const Tensor& ours, const Tensor& ref, double rtol,
                                           double atol) {
  if (ours.shape() != ref.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << shape_str(ours.shape()) << " vs reference " << shape_str(ref.shape());
  }
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same_inf = std::isinf(a[i]) && a[i] == b[i];
    const bool ok = same_inf || (std::isfinite(a[i]) && std::isfinite(b[i]) &&
                                 std::abs(static_cast<double>(a[i]) - b[i]) <=
                                     atol + rtol * std::abs(static_cast<double>(b[i])));
    if (!ok && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << a.size() << " elements differ beyond atol " << atol << " + rtol "
         << rtol << " * |ref|; first at flat index " << first << ": " << a[first] << " vs "
         << b[first];
}

inline double cosine(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  if (x.size() != y.size()) return std::numeric_limits<double>::quiet_NaN();
  double xy = 0, xx = 0, yy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    xy += static_cast<double>(x[i]) * y[i];
    xx += static_cast<double>(x[i]) * x[i];
    yy += static_cast<double>(y[i]) * y[i];
  }
  if (xx == 0 || yy == 0) return xx == yy ? 1.0 : 0.0;
  return xy / std::sqrt(xx * yy);
}

template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no engine::Error thrown; expected one mentioning '" << *parts.begin() << "'";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
    }
  }
}

}  // namespace engine::testing

#define EXPECT_CLOSE(ours, ref, tol) \
  EXPECT_LE(::engine::testing::rel_err((ours), (ref)), (tol)) << "comparing " #ours " to " #ref
#define EXPECT_ALLCLOSE(ours, ref, rtol, atol)                            \
  EXPECT_TRUE(::engine::testing::allclose((ours), (ref), (rtol), (atol))) \
      << "comparing " #ours " to " #ref
