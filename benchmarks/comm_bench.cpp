// Collective timings through llamatron's communicator (comm.h) under mpirun: the all-reduce
// (Open MPI's MPI_Iallreduce, whichever algorithm coll_libnbc_iallreduce_algorithm picks) and the
// ring reduce-scatter and all-gather llamatron runs itself, on fp32 buffers of --mb MiB. Rank 0
// prints the median time of --reps runs and the rate of the ring volume each rank sends
// (2 (p - 1) / p x S for the all-reduce, (p - 1) / p x S for the others). Not a test: figures.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "llamatron/comm.h"

int main(int argc, char** argv) {
  CLI::App app{"collective timings over the MPI communicator"};
  double mb = 4;
  int reps = 5;
  app.add_option("--mb", mb, "MiB of fp32 per buffer (default 4)");
  app.add_option("--reps", reps, "timed runs per collective, after one warm-up (default 5)");
  CLI11_PARSE(app, argc, argv);
  using namespace llamatron;
  Communicator& w = world();
  const int p = w.size();
  const int64_t n = static_cast<int64_t>(mb * (1 << 20) / 4) / p * p;
  std::vector<float> buf(n, 1.0f), out(n / p);
  const auto time = [&](const auto& run) {
    std::vector<double> ms;
    for (int i = 0; i <= reps; ++i) {
      w.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      run();
      const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      double worst = t;
      w.all_reduce(&worst, 1, ReduceOp::Max);
      if (i > 0) ms.push_back(worst);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  const double bytes = static_cast<double>(n) * 4, ring = (p - 1.0) / p * bytes;
  const double ar = time([&] { w.all_reduce(buf.data(), n, DType::F32, ReduceOp::Sum); });
  const double rs = time([&] { w.reduce_scatter(buf.data(), out.data(), n / p, DType::F32, ReduceOp::Sum); });
  const double ag = time([&] { w.all_gather(out.data(), buf.data(), n / p, DType::F32); });
  if (w.rank() == 0) {
    std::printf("%d ranks, %.1f MiB fp32\n", p, bytes / (1 << 20));
    std::printf("all_reduce      %8.1f ms  %7.1f Mbit/s of ring volume\n", ar, 2 * ring * 8 / (ar * 1e3));
    std::printf("reduce_scatter  %8.1f ms  %7.1f Mbit/s of ring volume\n", rs, ring * 8 / (rs * 1e3));
    std::printf("all_gather      %8.1f ms  %7.1f Mbit/s of ring volume\n", ag, ring * 8 / (ag * 1e3));
  }
  return 0;
}
