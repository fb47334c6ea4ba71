// The CPU allocator's block cache (engine/storage.cpp): large blocks freed by one training step
// are handed back to the next step's requests of the same size class, live blocks never share
// memory, and the live-byte peak counts requested bytes, not cached ones.
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "engine/storage.h"
#include "tests/testing.h"

namespace engine {
namespace {

constexpr size_t kMB = size_t(1) << 20;

TEST(CpuAllocator, LargeBlocksAreReusedWithinTheirSizeClass) {
  Allocator* a = allocator_for(DeviceType::CPU);
  void* p = a->allocate(3 * kMB + 1024);
  ASSERT_NE(p, nullptr);
  a->deallocate(p, 3 * kMB + 1024);
  // 3 MB + 200 KB rounds to the same class as 3 MB + 1 KB (3.25 MB): the freed block comes back.
  void* q = a->allocate(3 * kMB + 200 * 1024);
  EXPECT_EQ(q, p);
  std::memset(q, 1, 3 * kMB + 200 * 1024);  // the whole request is usable
  a->deallocate(q, 3 * kMB + 200 * 1024);
}

TEST(CpuAllocator, LiveBlocksNeverOverlapAndKeepTheirBytes) {
  Allocator* a = allocator_for(DeviceType::CPU);
  const size_t sizes[] = {kMB, 2 * kMB, kMB, 5 * kMB, 2 * kMB, 64, 4096, kMB};
  for (int round = 0; round < 3; ++round) {  // round 1 and 2 are served from the cache
    std::vector<uint8_t*> blocks;
    for (size_t i = 0; i < std::size(sizes); ++i) {
      auto* b = static_cast<uint8_t*>(a->allocate(sizes[i]));
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 64, 0u);
      std::memset(b, int(i + 1), sizes[i]);
      blocks.push_back(b);
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
      EXPECT_EQ(blocks[i][0], i + 1);
      EXPECT_EQ(blocks[i][sizes[i] - 1], i + 1) << "block " << i << " was overwritten";
    }
    for (size_t i = 0; i < blocks.size(); ++i) a->deallocate(blocks[i], sizes[i]);
  }
}

TEST(CpuAllocator, PeakCountsLiveBytesNotCachedOnes) {
  Allocator* a = allocator_for(DeviceType::CPU);
  void* big = a->allocate(40 * kMB);
  const size_t with_big = a->peak_bytes();
  EXPECT_GE(with_big, 40 * kMB);
  a->deallocate(big, 40 * kMB);
  // Another phase: more is cached (40 MB) than in use, so the miss drops the cache; the peak
  // does not move for blocks that are only cached.
  void* other = a->allocate(7 * kMB);
  ASSERT_NE(other, nullptr);
  std::memset(other, 0, 7 * kMB);
  EXPECT_EQ(a->peak_bytes(), with_big);
  a->deallocate(other, 7 * kMB);
}

}  // namespace
}  // namespace engine
