// Device memory for the CUDA backend: a caching pool in front of the device runtime, so the step
// loop never calls cudaMalloc/cudaFree (both synchronize the device). Sizes are rounded to
// 512 B (small) or 2 MiB (large) classes; a freed block returns to its class's free list and is
// handed out again for the same class. All work runs on one compute stream, so a block freed and
// reused is ordered by the stream itself. release_cached() gives the cache back to the runtime.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "cuda/runtime.h"
#include "llamatron/tensor.h"

namespace llamatron::cuda {

class CachingDeviceAllocator final : public Allocator {
 public:
  explicit CachingDeviceAllocator(rt::Runtime& runtime) : rt_(runtime) {}
  ~CachingDeviceAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  Device device() const override { return Device::CUDA; }

  struct Stats {
    size_t runtime_mallocs = 0;  // calls that reached the runtime (should stop growing after step 1)
    size_t bytes_reserved = 0;   // held from the runtime, in use or cached
    size_t bytes_in_use = 0;
  };
  Stats stats() const;
  void release_cached();
  static size_t size_class(size_t bytes);

 private:
  rt::Runtime& rt_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::map<void*, size_t> live_;               // block -> size class
  Stats stats_;
};

}  // namespace llamatron::cuda
