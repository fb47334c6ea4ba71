// Free blocks by size class, shared by the caching allocators (the CPU one in engine/storage.cpp,
// the CUDA one in kernels/cuda/runtime.cpp): put() keeps a freed block, take() returns one of a
// class or nullptr, drain() hands every kept block to a release function. How sizes map to
// classes, where blocks come from and when to drain are the allocator's choice. Not thread-safe:
// the allocators call it under their own lock.
#pragma once
#include <cstddef>
#include <unordered_map>
#include <vector>

namespace engine {

class BlockCache {
 public:
  void* take(size_t cls) {
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= cls;
    return p;
  }
  void put(size_t cls, void* p) {
    free_[cls].push_back(p);
    cached_ += cls;
  }
  // release(block, cls) for every kept block; the cache is empty afterwards.
  template <typename Release>
  void drain(Release&& release) {
    for (auto& [cls, blocks] : free_)
      for (void* p : blocks) release(p, cls);
    free_.clear();
    cached_ = 0;
  }
  size_t cached_bytes() const { return cached_; }

 private:
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  size_t cached_ = 0;
};

}  // namespace engine
