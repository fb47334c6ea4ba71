// Shared test helpers: fixtures written by tests/py/fx_*.py, and the comparison rule
// max|ours - ref| / max|ref| that every parity test states its tolerance in.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/tensor.h"
#include "engine/tensor_io.h"

namespace engine::testing {

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

// max|a - b| / max|b|, with b the reference (1 when b is all zeros).
inline double rel_err(const Tensor& ours, const Tensor& ref) {
  EXPECT_EQ(shape_str(ours.shape()), shape_str(ref.shape()));
  if (ours.shape() != ref.shape()) return INFINITY;
  auto a = ours.to_vector(), b = ref.to_vector();
  double diff = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    mag = std::max(mag, std::abs(static_cast<double>(b[i])));
  }
  return diff / (mag > 0 ? mag : 1.0);
}

// Cosine of the angle between two tensors seen as vectors: 1 when they point the same way.
inline double cosine(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  double xy = 0, xx = 0, yy = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    xy += static_cast<double>(x[i]) * y[i];
    xx += static_cast<double>(x[i]) * x[i];
    yy += static_cast<double>(y[i]) * y[i];
  }
  return (xx == 0 && yy == 0) ? 1.0 : xy / std::sqrt(xx * yy);
}

}  // namespace engine::testing

#define EXPECT_CLOSE(ours, ref, tol) \
  EXPECT_LE(::engine::testing::rel_err((ours), (ref)), (tol)) << "comparing " #ours " to " #ref
