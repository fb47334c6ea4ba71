// Native CUDA dropout against the CPU kernels. Both draw the mask from engine/philox.h, and the
// kept values are one float multiply by the same 1 / (1 - p), so outputs must be bit-identical:
// tolerance 0, compared bit for bit. Offsets cover a multiple of 4 (the float4 path), each other
// residue mod 4 (partial first Philox block) and a counter above 2^32 (the high counter word).
#include <cstring>
#include <limits>

#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::fast_randn;

using testing::poisoned_cuda;
using testing::test_sizes;

constexpr float kRates[] = {0.1f, 0.5f, 0.9f};
constexpr uint64_t kOffsets[] = {0, 1, 2, 3, 1000, (uint64_t{1} << 32) + 6};

// Number of elements whose bits differ (a NaN left by an unwritten element counts).
int64_t bit_mismatches(const Tensor& ours, const Tensor& ref) {
  const std::vector<float> a = ours.to_vector(), b = ref.to_vector();
  if (a.size() != b.size()) return std::numeric_limits<int64_t>::max();
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return bad;
}

template <class Slot>
void check_against_cpu(Slot slot, uint64_t salt) {
  for (int64_t n : test_sizes()) {
    const Tensor in = fast_randn({n}, salt), in_d = in.to(Device::cuda());
    for (float p : kRates) {
      for (uint64_t offset : kOffsets) {
        SCOPED_TRACE("p = " + std::to_string(p) + ", n = " + std::to_string(n) +
                     ", offset = " + std::to_string(offset));
        const uint64_t seed = salt * 131 + static_cast<uint64_t>(n) + offset;
        Tensor ref = Tensor::empty({n});
        (kernel_table(Backend::Cpu).*slot)(in, ref, p, seed, offset);
        Tensor out = poisoned_cuda(n);
        (kernel_table(Backend::Native).*slot)(in_d, out, p, seed, offset);
        EXPECT_EQ(bit_mismatches(out, ref), 0);
      }
    }
  }
}

TEST(CudaDropout, ForwardMatchesCpuBitForBit) {
  ENGINE_REQUIRE_CUDA();
  check_against_cpu(&KernelTable::dropout_forward, 1);
}

TEST(CudaDropout, BackwardMatchesCpuBitForBit) {
  ENGINE_REQUIRE_CUDA();
  check_against_cpu(&KernelTable::dropout_backward, 2);
}

// Backward regenerates forward's mask: with gy = x, gx equals y wherever y was kept, and both
// are zero where it was dropped.
TEST(CudaDropout, BackwardRegeneratesForwardMask) {
  ENGINE_REQUIRE_CUDA();
  const int64_t n = 1000003;
  const Tensor x = fast_randn({n}, 3).to(Device::cuda());
  Tensor y = poisoned_cuda(n), gx = poisoned_cuda(n);
  KernelTable& k = kernel_table(Backend::Native);
  k.dropout_forward(x, y, 0.5f, 77, 13);
  k.dropout_backward(x, gx, 0.5f, 77, 13);
  EXPECT_EQ(bit_mismatches(gx, y), 0);
}

}  // namespace
}  // namespace engine
