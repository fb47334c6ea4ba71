// Epoch orders; see sampler.h.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>

#include "engine/error.h"
#include "engine/random.h"

namespace data {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr uint64_t kShuffleStream = 1, kBalancedStream = 2;

}  // namespace

uint64_t mix_seed(uint64_t seed, uint64_t epoch, uint64_t stream) {
  return splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ stream);
}

std::vector<int64_t> sequential_order(int64_t n) {
  std::vector<int64_t> order(size_t(std::max<int64_t>(n, 0)));
  std::iota(order.begin(), order.end(), int64_t(0));
  return order;
}

std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order = sequential_order(n);
  engine::Generator g(mix_seed(seed, uint64_t(epoch), kShuffleStream));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[g.below(uint64_t(i) + 1)]);
  return order;
}

std::vector<double> inverse_frequency_weights(const std::vector<int>& labels) {
  std::vector<int64_t> count;
  for (int l : labels) {
    ENGINE_CHECK(l >= 0, "balanced sampling needs labelled samples (got label ", l, ")");
    if (size_t(l) >= count.size()) count.resize(size_t(l) + 1, 0);
    ++count[l];
  }
  std::vector<double> w(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) w[i] = 1.0 / double(count[labels[i]]);
  return w;
}

std::vector<int64_t> balanced_order(const std::vector<int>& labels, uint64_t seed, int64_t epoch) {
  std::vector<double> w = inverse_frequency_weights(labels);
  std::vector<double> cdf(w.size());
  std::partial_sum(w.begin(), w.end(), cdf.begin());
  engine::Generator g(mix_seed(seed, uint64_t(epoch), kBalancedStream));
  const double total = cdf.empty() ? 0.0 : cdf.back();
  std::vector<int64_t> order(w.size());
  for (size_t i = 0; i < order.size(); ++i) {
    // 53 random bits -> a double in [0, total).
    double u = double(g.next_u64() >> 11) * (1.0 / 9007199254740992.0) * total;
    size_t k = size_t(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    order[i] = int64_t(std::min(k, cdf.size() - 1));
  }
  return order;
}

}  // namespace data
