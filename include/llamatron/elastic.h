// The layout a job continues with after losing hosts (scripts/launch.sh --elastic; docs/launching.md,
// "When something fails"): the same tensor and pipeline parallelism, each TP group inside one host,
// fewer data-parallel ranks, and the same global batch through more micro-batches per step, so the
// run resumes from its checkpoint (which reshards) and trains exactly the samples it would have.
#pragma once
#include <string>
#include <vector>

#include "llamatron/config.h"

namespace llamatron {

struct HostSlots {
  std::string host;
  int slots = 0;  // ranks that can run there
};

struct ElasticLayout {
  std::vector<HostSlots> hosts;  // the hosts used and the ranks on each (filled in this order: --map-by slot)
  int ranks = 0;                 // tp * pp * dp
  int64_t data_parallel = 0, grad_accum_steps = 0, global_batch_size = 0;
};

// For a run of `cfg` that trained on `from_ranks` ranks: the largest layout on `hosts` that keeps
// tensor_parallel and pipeline_parallel, puts a multiple of tensor_parallel ranks on every host used
// (TP groups never span hosts), and keeps the global batch (divisible by micro_batch_size x DP, and
// by pipeline_parallel micro-batches when interleaved; every size of the
// batch ramp-up too). An Error saying why when none exists.
ElasticLayout elastic_layout(const RunConfig& cfg, int from_ranks, const std::vector<HostSlots>& hosts);

}  // namespace llamatron
