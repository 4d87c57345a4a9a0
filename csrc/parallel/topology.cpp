#include "llamatron/topology.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <functional>
#include <set>

namespace llamatron {
namespace {

constexpr int kName = 256;  // bytes per hostname record (HOST_NAME_MAX is 64 on Linux)

}  // namespace

HostMap host_map(std::vector<std::string> host_of) {
  HostMap m;
  m.host_of = std::move(host_of);
  for (const std::string& h : m.host_of) {
    const auto at = std::find(m.hosts.begin(), m.hosts.end(), h);
    if (at == m.hosts.end()) {
      m.hosts.push_back(h), m.ranks_on.push_back(1);
    } else {
      ++m.ranks_on[at - m.hosts.begin()];
    }
  }
  return m;
}

HostMap gather_hosts(Communicator& world) {
  std::array<char, kName> mine{};
  ::gethostname(mine.data(), kName - 1);
  std::vector<char> all(static_cast<size_t>(kName) * world.size());
  world.all_gather(mine.data(), all.data(), kName / 4, DType::I32);  // kName bytes as int32 words
  std::vector<std::string> host_of;
  for (int r = 0; r < world.size(); ++r) host_of.emplace_back(all.data() + static_cast<size_t>(r) * kName);
  return host_map(std::move(host_of));
}

std::vector<GroupSpread> group_spread(const HostMap& m, int tp, int pp, int dp) {
  const auto rank = [&](int t, int d, int p) { return t + tp * (d + dp * p); };
  // kind, group size, and the rank of member i of group g
  struct Kind {
    const char* name;
    int groups, size;
    std::function<int(int, int)> member;
  };
  const std::vector<Kind> kinds = {
      {"tp", dp * pp, tp, [&](int g, int i) { return rank(i, g % dp, g / dp); }},
      {"pp", tp * dp, pp, [&](int g, int i) { return rank(g % tp, g / tp, i); }},
      {"dp", tp * pp, dp, [&](int g, int i) { return rank(g % tp, i, g / tp); }},
  };
  std::vector<GroupSpread> out;
  for (const Kind& k : kinds) {
    GroupSpread s{k.name, k.groups, 0};
    for (int g = 0; g < k.groups; ++g) {
      std::set<std::string> on;
      for (int i = 0; i < k.size; ++i) on.insert(m.host_of.at(k.member(g, i)));
      s.spanning += on.size() > 1;
    }
    out.push_back(s);
  }
  return out;
}

std::string tp_spread_problem(const HostMap& m, int tp, int pp, int dp) {
  const GroupSpread s = group_spread(m, tp, pp, dp).front();
  if (s.spanning == 0) return "";
  return std::to_string(s.spanning) + " of " + std::to_string(s.groups) +
         " tensor-parallel groups span hosts, so their per-layer collectives cross the network: launch the ranks of a host "
         "consecutively (mpirun --map-by slot, or ppr:K:node with K a multiple of parallel.tensor_parallel; not --map-by node)";
}

std::string describe_placement(const HostMap& m, int tp, int pp, int dp) {
  std::string text = std::to_string(m.hosts.size()) + " host(s):";
  for (size_t h = 0; h < m.hosts.size(); ++h) text += " " + m.hosts[h] + " (" + std::to_string(m.ranks_on[h]) + " ranks)";
  text += " | groups spanning hosts:";
  for (const GroupSpread& s : group_spread(m, tp, pp, dp))
    text += " " + s.kind + " " + std::to_string(s.spanning) + "/" + std::to_string(s.groups);
  return text;
}

}  // namespace llamatron
