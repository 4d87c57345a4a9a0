// The bytes one training step sends per rank, per group and collective, from the layout alone
// (ring volumes, as CommStats counts them): what the log compares the measured traffic with, and
// what a planner charges for communication.
#pragma once
#include <map>
#include <string>

#include "llamatron/config.h"

namespace llamatron {

struct RankPosition {
  int tp, pp, dp;           // group sizes
  int pp_rank;              // this rank's stage
  int64_t zero_shard;       // elements of this rank's ZeRO-1 shard (the padded flat buffer / (dp x cp))
  int cp = 1;               // context parallelism
};

// Keys as CommStats's: "tp.all_reduce", "tp.sub.all_reduce" (replicated KV heads), "pp.send",
// "pp.all_reduce", "dp.reduce_scatter", "dp.all_gather", "dp.all_reduce" (with CP over DP x CP),
// "cp.send" (the ring attention's K/V and dK/dV), "mp.all_reduce".
std::map<std::string, double> step_comm_bytes(const RunConfig& cfg, const RankPosition& at);

}  // namespace llamatron
