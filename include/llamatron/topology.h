// Where the ranks run: the host of every rank (gathered once at start) and how the process grid's
// groups lie on the hosts. A TP group whose ranks sit on different hosts sends its per-layer
// all-reduces over the network instead of inside a node (docs/launching.md, "Placement").
#pragma once
#include <string>
#include <vector>

#include "llamatron/comm.h"

namespace llamatron {

struct HostMap {
  std::vector<std::string> host_of;  // world rank -> its host's name
  std::vector<std::string> hosts;    // the distinct hosts, in order of their first rank
  std::vector<int> ranks_on;         // ranks per host, same order
};
// Every rank's hostname, all-gathered over `world` (collective).
HostMap gather_hosts(Communicator& world);
HostMap host_map(std::vector<std::string> host_of);  // from a given placement (tests)

// For each group kind of the grid (rank = tp_rank + tp * (dp_rank + dp * pp_rank)): how many groups
// there are and how many of them span more than one host.
struct GroupSpread {
  std::string kind;  // "tp", "pp", "dp"
  int groups = 0, spanning = 0;
};
std::vector<GroupSpread> group_spread(const HostMap& hosts, int tp, int pp, int dp);

// "K of N tensor-parallel groups span hosts: <how to launch instead>" when some do; "" otherwise.
std::string tp_spread_problem(const HostMap& hosts, int tp, int pp, int dp);

// The map rank 0 logs: hosts and their ranks, then each kind's groups and how many span hosts.
std::string describe_placement(const HostMap& hosts, int tp, int pp, int dp);

}  // namespace llamatron
