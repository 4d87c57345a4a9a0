// Memory accounting: every tensor allocation is counted, per device, under the category of the
// MemoryScope in effect on the allocating thread ("other" when none). The log line shows the
// totals; the planner's estimates are tested against the per-category counts.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "llamatron/tensor.h"

namespace llamatron {

enum class MemCategory : uint8_t { Weights, Grads, Optimizer, Activations, Workspace, Comm, Other };
constexpr int kMemCategories = 7;
const char* mem_category_name(MemCategory c);  // "weights", "grads", ...

struct MemoryCounts {
  std::array<int64_t, kMemCategories> current{}, peak{};  // bytes; each category's own peak
  int64_t total = 0, total_peak = 0;                      // all categories together
  int64_t operator[](MemCategory c) const { return current[static_cast<int>(c)]; }
};
MemoryCounts memory_counts(Device device);
void reset_memory_peaks(Device device);  // peaks := current (e.g. after set-up, to see a step's)

// Allocations on this thread count under `category` while the scope lives (scopes nest).
class MemoryScope {
 public:
  explicit MemoryScope(MemCategory category);
  ~MemoryScope();
  MemoryScope(const MemoryScope&) = delete;
  MemoryScope& operator=(const MemoryScope&) = delete;

 private:
  MemCategory previous_;
};

// make() with its allocations counted under `category`, for member initialisers.
template <typename F>
auto counted_as(MemCategory category, F&& make) {
  MemoryScope scope(category);
  return make();
}

// Called by Tensor's storage: the current scope's category, and the accounting itself.
MemCategory current_mem_category();
void count_allocation(Device device, MemCategory category, int64_t bytes);  // negative: freed

}  // namespace llamatron
