#include "llamatron/elastic.h"

#include <algorithm>

#include "llamatron/batch_ramp.h"
#include "llamatron/errors.h"

namespace llamatron {

ElasticLayout elastic_layout(const RunConfig& cfg, int from_ranks, const std::vector<HostSlots>& hosts) {
  const ParallelConfig& p = cfg.parallel;
  const int64_t tp = p.tensor_parallel, pp = p.pipeline_parallel, model_parallel = tp * pp;
  const int64_t from_dp = p.data_parallel > 0 ? p.data_parallel : from_ranks / model_parallel;
  if (from_dp < 1 || from_dp * model_parallel != from_ranks)
    throw Error("the run had " + std::to_string(from_ranks) + " rank(s), not tensor_parallel x pipeline_parallel x data_parallel of its config");
  const int64_t micro = cfg.train.micro_batch_size;
  const int64_t global = cfg.train.global_batch_size > 0 ? cfg.train.global_batch_size : micro * cfg.train.grad_accum_steps * from_dp;
  // Whole TP groups per host; the hosts in the given order.
  int64_t usable = 0;
  for (const HostSlots& h : hosts) usable += h.slots / tp * tp;
  for (int64_t dp = usable / model_parallel; dp >= 1; --dp) {
    if (global % (micro * dp) != 0) continue;
    const int64_t accum = global / (micro * dp);
    if (p.virtual_pipeline > 1 && accum % pp != 0) continue;
    if (BatchRamp(cfg.train, global).first_unfit(micro * dp, p.virtual_pipeline > 1 ? pp : 1) > 0) continue;  // every ramp size too
    ElasticLayout out;
    out.ranks = static_cast<int>(dp * model_parallel);
    out.data_parallel = dp, out.grad_accum_steps = accum, out.global_batch_size = global;
    int64_t left = out.ranks;
    for (const HostSlots& h : hosts) {
      const int64_t take = std::min<int64_t>(left, h.slots / tp * tp);
      if (take > 0) out.hosts.push_back({h.host, static_cast<int>(take)});
      left -= take;
    }
    return out;
  }
  throw Error("no layout fits the remaining hosts: they hold " + std::to_string(usable) + " rank(s) in whole tensor-parallel groups of " +
              std::to_string(tp) + ", and tensor_parallel x pipeline_parallel is " + std::to_string(model_parallel) +
              " with a global batch of " + std::to_string(global) + " sequences: add hosts or restart by hand with another layout");
}

}  // namespace llamatron
