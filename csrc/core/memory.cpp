#include "llamatron/memory.h"

#include <algorithm>
#include <mutex>

namespace llamatron {

namespace {
thread_local MemCategory t_category = MemCategory::Other;
std::mutex g_mu;  // the async checkpoint writer allocates from its own thread
MemoryCounts g_counts[2];  // per Device
}  // namespace

const char* mem_category_name(MemCategory c) {
  static const char* names[kMemCategories] = {"weights", "grads", "optimizer", "activations", "workspace", "comm", "other"};
  return names[static_cast<int>(c)];
}

MemoryScope::MemoryScope(MemCategory category) : previous_(t_category) { t_category = category; }
MemoryScope::~MemoryScope() { t_category = previous_; }

MemCategory current_mem_category() { return t_category; }

void count_allocation(Device device, MemCategory category, int64_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  MemoryCounts& m = g_counts[static_cast<int>(device)];
  const int c = static_cast<int>(category);
  m.current[c] += bytes;
  m.total += bytes;
  m.peak[c] = std::max(m.peak[c], m.current[c]);
  m.total_peak = std::max(m.total_peak, m.total);
}

MemoryCounts memory_counts(Device device) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_counts[static_cast<int>(device)];
}

void reset_memory_peaks(Device device) {
  std::lock_guard<std::mutex> lock(g_mu);
  MemoryCounts& m = g_counts[static_cast<int>(device)];
  m.peak = m.current;
  m.total_peak = m.total;
}

}  // namespace llamatron
