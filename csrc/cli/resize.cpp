// `llamatron resize CONFIG --from-ranks N --hosts h1:8,h2:8`: the layout scripts/launch.sh
// --elastic relaunches a run with after losing hosts (elastic.h), as lines a shell reads.
#include <cstdio>

#include "cli/commands.h"
#include "llamatron/elastic.h"
#include "llamatron/errors.h"

namespace llamatron {

int cmd_resize(const std::string& config_path, const std::vector<std::string>& overrides, int from_ranks,
               const std::vector<std::string>& hosts_text) {
  const RunConfig cfg = load_config(config_path, overrides);
  std::vector<HostSlots> hosts;
  for (const std::string& h : hosts_text) {
    const size_t colon = h.rfind(':');
    int slots = 0;
    if (colon == std::string::npos || colon == 0 || std::sscanf(h.c_str() + colon + 1, "%d", &slots) != 1 || slots < 1)
      throw Error("--hosts entry '" + h + "' is not HOST:SLOTS (e.g. node3:8)");
    hosts.push_back({h.substr(0, colon), slots});
  }
  const ElasticLayout l = elastic_layout(cfg, from_ranks, hosts);
  std::printf("np %d\n", l.ranks);
  for (const HostSlots& h : l.hosts) std::printf("host %s %d\n", h.host.c_str(), h.slots);
  std::printf("set parallel.data_parallel=%lld\nset train.global_batch_size=%lld\nset train.grad_accum_steps=%lld\n",
              static_cast<long long>(l.data_parallel), static_cast<long long>(l.global_batch_size),
              static_cast<long long>(l.grad_accum_steps));
  return 0;
}

}  // namespace llamatron
