// How the process grid's groups lie on hosts (include/llamatron/topology.h), for placements written
// out by hand: mpirun's --map-by node puts consecutive ranks on different hosts, --map-by slot fills
// a host first.
#include <gtest/gtest.h>

#include "llamatron/topology.h"

namespace llamatron {
namespace {

TEST(Topology, MapByNodeSpreadsEveryTensorParallelGroup) {
  // tp 2 x dp 2 over 2 hosts, round robin (--map-by node): rank r on host r % 2.
  const HostMap m = host_map({"a", "b", "a", "b"});
  EXPECT_EQ(m.hosts, std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(m.ranks_on, std::vector<int>({2, 2}));
  const std::vector<GroupSpread> s = group_spread(m, 2, 1, 2);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].kind, "tp");
  EXPECT_EQ(s[0].groups, 2);
  EXPECT_EQ(s[0].spanning, 2);  // {0, 1} and {2, 3}
  EXPECT_EQ(s[1].kind, "pp");
  EXPECT_EQ(s[1].spanning, 0);  // one-rank groups never span
  EXPECT_EQ(s[2].kind, "dp");
  EXPECT_EQ(s[2].spanning, 0);  // {0, 2} on a, {1, 3} on b
  EXPECT_EQ(describe_placement(m, 2, 1, 2), "2 host(s): a (2 ranks) b (2 ranks) | groups spanning hosts: tp 2/2 pp 0/4 dp 0/2");
}

TEST(Topology, MapBySlotKeepsTensorParallelInsideAHost) {
  // tp 2 x pp 2 x dp 2 on 2 hosts of 4 slots filled in order: TP and DP inside a host, PP across.
  const HostMap m = host_map({"a", "a", "a", "a", "b", "b", "b", "b"});
  const std::vector<GroupSpread> s = group_spread(m, 2, 2, 2);
  EXPECT_EQ(s[0].spanning, 0);  // tp {0,1} {2,3} {4,5} {6,7}
  EXPECT_EQ(s[0].groups, 4);
  EXPECT_EQ(s[1].spanning, 4);  // pp {0,4} {1,5} {2,6} {3,7}
  EXPECT_EQ(s[2].spanning, 0);  // dp {0,2} {1,3} {4,6} {5,7}
}

TEST(Topology, OneHostSpansNothing) {
  const HostMap m = host_map(std::vector<std::string>(8, "h"));
  for (const GroupSpread& s : group_spread(m, 2, 2, 2)) EXPECT_EQ(s.spanning, 0) << s.kind;
}

}  // namespace
}  // namespace llamatron
