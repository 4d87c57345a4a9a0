// The device allocator's cache: after the first step's allocations, a step that frees and
// allocates the same sizes again never reaches the runtime (no cudaMalloc in the step loop).
#include <gtest/gtest.h>

#include "cuda/caching_allocator.h"

namespace llamatron::cuda {
namespace {

TEST(CachingDeviceAllocator, SteadyStateStepsDoNotCallTheRuntime) {
  auto rt = rt::make_emulated_runtime();
  CachingDeviceAllocator alloc(*rt);
  const std::vector<size_t> sizes = {100, 4096, 4000, 3u << 20, 777, 100};  // a "step"'s tensors
  auto step = [&] {
    std::vector<void*> ptrs;
    for (size_t s : sizes) ptrs.push_back(alloc.allocate(s));
    for (size_t i = 0; i < ptrs.size(); ++i) alloc.deallocate(ptrs[i], sizes[i]);
  };
  step();
  const size_t after_first = alloc.stats().runtime_mallocs;
  EXPECT_EQ(after_first, sizes.size());
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(alloc.stats().runtime_mallocs, after_first);
  EXPECT_EQ(alloc.stats().bytes_in_use, 0u);
  EXPECT_GT(alloc.stats().bytes_reserved, 0u);
  alloc.release_cached();
  EXPECT_EQ(alloc.stats().bytes_reserved, 0u);
}

TEST(CachingDeviceAllocator, SizeClassesRoundUp) {
  EXPECT_EQ(CachingDeviceAllocator::size_class(1), 512u);
  EXPECT_EQ(CachingDeviceAllocator::size_class(512), 512u);
  EXPECT_EQ(CachingDeviceAllocator::size_class(513), 1024u);
  EXPECT_EQ(CachingDeviceAllocator::size_class((1u << 20) + 1), 2u << 20);
  EXPECT_EQ(CachingDeviceAllocator::size_class((2u << 20) + 1), 4u << 20);
}

TEST(CachingDeviceAllocator, BlocksInUseAreDistinctAndWritable) {
  auto rt = rt::make_emulated_runtime();
  CachingDeviceAllocator alloc(*rt);
  auto* a = static_cast<char*>(alloc.allocate(1000));
  auto* b = static_cast<char*>(alloc.allocate(1000));
  EXPECT_NE(a, b);
  rt->memset(a, 1, 1000);
  rt->memset(b, 2, 1000);
  EXPECT_EQ(a[999], 1);
  EXPECT_EQ(b[0], 2);
  alloc.deallocate(a, 1000);
  EXPECT_EQ(alloc.allocate(900), a);  // same size class: the cached block comes back
}

}  // namespace
}  // namespace llamatron::cuda
