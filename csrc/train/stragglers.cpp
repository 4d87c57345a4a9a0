#include "llamatron/stragglers.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace llamatron {

std::string find_stragglers(const std::vector<RankTimes>& times, const std::vector<int>& stage_of,
                            const std::vector<std::string>& host_of, double factor) {
  if (factor <= 0) return "";
  std::map<int, std::vector<double>> by_stage;
  for (size_t r = 0; r < times.size(); ++r) by_stage[stage_of.at(r)].push_back(times[r].compute_ms);
  std::map<int, double> median;
  for (auto& [stage, v] : by_stage) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    median[stage] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  std::string out;
  for (size_t r = 0; r < times.size(); ++r) {
    const int stage = stage_of[r];
    const double m = median[stage];
    if (by_stage[stage].size() < 2 || m <= 0 || times[r].compute_ms <= factor * m) continue;
    out += fmt::format("{}rank {}{}: compute {:.0f} ms, {:.1f}x the median {:.0f} ms of pipeline stage {} (waits {:.0f} ms)",
                       out.empty() ? "" : "; ", r, host_of.empty() ? "" : " on " + host_of.at(r), times[r].compute_ms,
                       times[r].compute_ms / m, m, stage, times[r].wait_ms);
  }
  return out;
}

}  // namespace llamatron
