// What every benchmark here shares: the median of timed runs, and wall-clock timing on the host.
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace llamatron::bench {

// Median of `runs` timings (ms) returned by timed_run, after one warm-up run.
inline double median_ms(int runs, const std::function<double()>& timed_run) {
  timed_run();
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) ms.push_back(timed_run());
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

inline double wall_ms(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace llamatron::bench
