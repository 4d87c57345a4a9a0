#include "cuda/caching_allocator.h"

#include "llamatron/errors.h"

namespace llamatron::cuda {

size_t CachingDeviceAllocator::size_class(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = 2u << 20, kLargeFrom = 1u << 20;
  const size_t g = bytes < kLargeFrom ? kSmall : kLarge;
  return bytes == 0 ? kSmall : (bytes + g - 1) / g * g;
}

CachingDeviceAllocator::~CachingDeviceAllocator() {
  release_cached();
  for (auto& [ptr, cls] : live_) rt_.free(ptr);  // leaked tensors: give the memory back anyway
}

void* CachingDeviceAllocator::allocate(size_t bytes) {
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* ptr = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    ptr = rt_.malloc(cls);
    ++stats_.runtime_mallocs;
    stats_.bytes_reserved += cls;
  }
  live_[ptr] = cls;
  stats_.bytes_in_use += cls;
  return ptr;
}

void CachingDeviceAllocator::deallocate(void* ptr, size_t) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  LT_CHECK(it != live_.end(), "deallocating a pointer this allocator did not hand out");
  free_[it->second].push_back(ptr);
  stats_.bytes_in_use -= it->second;
  live_.erase(it);
}

CachingDeviceAllocator::Stats CachingDeviceAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingDeviceAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [cls, blocks] : free_)
    for (void* p : blocks) {
      rt_.free(p);
      stats_.bytes_reserved -= cls;
    }
  free_.clear();
}

}  // namespace llamatron::cuda
