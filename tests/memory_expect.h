// The planner's memory (planner.h) against the engine's allocation accounting (memory.h), shared
// by the single-process, MPI and device tests: each planned category's peak since `base`, and
// the total's, within `rel` (the 10%).
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "llamatron/memory.h"
#include "llamatron/planner.h"

namespace llamatron {

inline void expect_memory_as_planned(const MemoryPlan& p, const MemoryCounts& base, const MemoryCounts& now, const std::string& what,
                                     bool with_total = true, double rel = 0.1) {
  const std::pair<MemCategory, double> planned[] = {
      {MemCategory::Weights, p.weights},         {MemCategory::Grads, p.grads},         {MemCategory::Optimizer, p.optimizer},
      {MemCategory::Activations, p.activations}, {MemCategory::Workspace, p.workspace}, {MemCategory::Comm, p.comm}};
  for (const auto& [cat, bytes] : planned) {
    const int i = static_cast<int>(cat);
    EXPECT_NEAR(static_cast<double>(now.peak[i] - base.current[i]), bytes, rel * bytes) << what << ": " << mem_category_name(cat);
  }
  if (with_total) {
    EXPECT_NEAR(static_cast<double>(now.total_peak - base.total), p.total(), rel * p.total())
        << what << ": total (other: " << now.peak[static_cast<int>(MemCategory::Other)] << " B)";
  }
}

}  // namespace llamatron
