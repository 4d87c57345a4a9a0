// Reusable per-thread scratch buffers. Large temporaries allocated per call come from fresh mmap
// pages, and faulting those in every step cost more than the work done in them.
// A slot is one temporary of one op; buffers only grow and live as long as the thread.
#pragma once
#include <cstddef>
#include <vector>

namespace llamatron::cpu {

enum class Slot { Q, K, V, DO, O, TileS, TileDP, TileP, TileDS, Acc, Rows1, Rows2, DQ, DK, DV, kCount };

template <typename T>
T* scratch(Slot slot, size_t n) {
  thread_local std::vector<T> buffers[static_cast<size_t>(Slot::kCount)];
  std::vector<T>& b = buffers[static_cast<size_t>(slot)];
  if (b.size() < n) b.resize(n);
  return b.data();
}

}  // namespace llamatron::cpu
