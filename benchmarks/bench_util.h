// What every benchmark here shares: the median of timed runs, and wall-clock timing on the host.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cuda/runtime.h"

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

// The GPU when there is one (and --cpu was not given): on_gpu(runtime, runs or 20); else, after
// saying why, on_cpu(runs or 3). Benchmarks never print a GPU figure they did not measure.
inline void on_gpu_or_cpu(bool force_cpu, int runs, const std::function<void(rt::Runtime&, int)>& on_gpu,
                          const std::function<void(int)>& on_cpu) {
  std::string why;
  auto gpu = force_cpu ? nullptr : rt::make_cuda_runtime(&why);
  if (gpu) return on_gpu(*gpu, runs > 0 ? runs : 20);
  if (!force_cpu) std::printf("# %s\n", why.c_str());
  on_cpu(runs > 0 ? runs : 3);
}

}  // namespace llamatron::bench
