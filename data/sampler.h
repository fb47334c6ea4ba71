// The order in which an epoch visits a dataset. Every order is a function of (seed, epoch) alone,
// so a run resumed at epoch k sees exactly the batches an uninterrupted run saw, and the number
// of loader threads changes nothing.
//   sequential_order  0, 1, ..., n-1 (evaluation, prediction)
//   shuffled_order    a uniform permutation (Fisher-Yates on Philox draws)
//   balanced_order    n draws with replacement, each sample weighted by 1 / (its class's count):
//                     torch.utils.data.WeightedRandomSampler with inverse class frequency, the
//                     study's "imbalance" option; every class comes up equally often on average.
#pragma once
#include <cstdint>
#include <vector>

namespace data {

std::vector<int64_t> sequential_order(int64_t n);
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch);
std::vector<int64_t> balanced_order(const std::vector<int>& labels, uint64_t seed, int64_t epoch);
// Per-sample weights 1 / count(label); labels must be >= 0.
std::vector<double> inverse_frequency_weights(const std::vector<int>& labels);

// A well-mixed 64-bit key for (seed, epoch, stream): streams of one seed never overlap.
uint64_t mix_seed(uint64_t seed, uint64_t epoch, uint64_t stream);

}  // namespace data
