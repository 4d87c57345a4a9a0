// Straggler detection (Megatron's straggler detector, in the log): each log interval the ranks'
// compute times are gathered, and a rank much slower than the others doing the same work (the
// ranks of its pipeline stage) is named with its host. A slow GPU, a throttled CPU or a busy host
// shows up here before it shows up as a slow job.
#pragma once
#include <string>
#include <vector>

namespace llamatron {

struct RankTimes {
  double compute_ms = 0;  // the interval's step time minus the time spent waiting on communication
  double wait_ms = 0;     // the time spent waiting on communication
};

// "rank 3 on host-1: compute 812 ms, 3.1x the median 260 ms of pipeline stage 0 (...)" for every
// rank whose compute time is above factor x the median of the ranks with the same stage_of; ""
// when none is (or factor is 0). host_of may be empty (no hosts named).
std::string find_stragglers(const std::vector<RankTimes>& times, const std::vector<int>& stage_of,
                            const std::vector<std::string>& host_of, double factor);

}  // namespace llamatron
