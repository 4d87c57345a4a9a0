// The process grid: world = tp x cp x dp x pp, rank = tp_rank + tp * (cp_rank + cp * (dp_rank +
// dp * pp_rank)) (Megatron's order: TP innermost, so a TP group sits inside a node; then context
// parallelism). The one place that computes ranks and groups.
#pragma once
#include <functional>
#include <memory>

#include "llamatron/comm.h"
#include "llamatron/config.h"

namespace llamatron {

class ProcessGrid {
 public:
  // Checks world.size() == tp * pp * dp (dp 0: whatever is left) and builds the groups; a layout
  // that does not fit the world is an Error naming both and the fix (the same on every rank).
  // device_group: wraps each MPI group for the device the tensors live on (DeviceBackend::device_group).
  ProcessGrid(Communicator& world, const ParallelConfig& layout,
              const std::function<std::unique_ptr<Communicator>(std::unique_ptr<Communicator>)>& device_group = {});

  int tp() const { return tp_; }
  int pp() const { return pp_; }
  int dp() const { return dp_; }
  int cp() const { return cp_; }
  int rank() const { return world_.rank(); }
  int tp_rank() const { return rank() % tp_; }
  int cp_rank() const { return rank() / tp_ % cp_; }
  int dp_rank() const { return rank() / (tp_ * cp_) % dp_; }
  int pp_rank() const { return rank() / (tp_ * cp_ * dp_); }
  // World rank of the process at these coordinates.
  int rank_of(int tp_rank, int dp_rank, int pp_rank, int cp_rank = 0) const {
    return tp_rank + tp_ * (cp_rank + cp_ * (dp_rank + dp_ * pp_rank));
  }

  Communicator& world() const { return world_; }
  Communicator& tp_group() const { return *tp_group_; }  // same (dp, pp): ordered by tp_rank
  Communicator& dp_group() const { return *dp_group_; }  // same (tp, cp, pp): ordered by dp_rank
  Communicator& cp_group() const { return *cp_group_; }  // same (tp, dp, pp): ordered by cp_rank; cp > 1 only
  // Same (tp, pp): the ranks whose gradients are summed and whose ZeRO-1 shards make one state
  // (dp x cp; the dp group itself without context parallelism), ordered by (dp_rank, cp_rank).
  Communicator& grad_group() const { return cp_ > 1 ? *grad_group_ : *dp_group_; }
  Communicator& pp_group() const { return *pp_group_; }  // same (tp, dp): ordered by pp_rank
  // The same ranks for the pipeline's gradients (counted as "pp" too); pp_group itself when pp == 1.
  Communicator& pp_grad_group() const { return pp_grad_group_ ? *pp_grad_group_ : *pp_group_; }
  Communicator& model_parallel_group() const { return *mp_group_; }  // same (dp, cp): one model replica
  // Bytes sent through the groups (tp.*, dp.*, pp.*, mp.*), counted since the last reset.
  CommStats& comm_stats() const { return stats_; }

 private:
  Communicator& world_;
  int tp_, pp_, dp_, cp_;
  mutable CommStats stats_;
  std::unique_ptr<Communicator> tp_group_, dp_group_, cp_group_, grad_group_, pp_group_, pp_grad_group_, mp_group_;
};

}  // namespace llamatron
