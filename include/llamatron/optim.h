// AdamW over the flat buffers of a ParamStore, global grad-norm clipping, LR schedules.
#pragma once
#include <cstdint>

#include <vector>

#include "llamatron/comm.h"
#include "llamatron/config.h"
#include "llamatron/params.h"
#include "llamatron/zero1.h"

namespace llamatron {

// Where the optimizer's collectives go; the single process: nowhere.
struct OptimizerGroups {
  Communicator* dp = nullptr;                 // ZeRO-1 shards the optimizer state over it
  Zero1Options zero1;                         // gradient wire dtype, buckets and overlap
  std::vector<Communicator*> model_parallel;  // the grad norm also sums over these (the TP x PP group)
};

// AdamW on this rank's ZeRO-1 shard of the flat buffers (the whole buffer in one process).
class AdamW {
 public:
  AdamW(ParamStore& params, const OptimConfig& cfg, const OptimizerGroups& groups = {});
  // Sums the gradients over the DP group, clips them to max_grad_norm by their global L2 norm
  // (torch's clip_grad_norm_: scale = max_norm / (norm + 1e-6) when below 1, fused into the
  // update), takes one AdamW step at `lr` and gathers the parameters. Returns the pre-clip norm.
  double step(double lr);
  // The same in two halves, so a caller can look at the norm before committing: the gradients
  // summed over DP and their global norm; then the update (skipping it leaves everything as it
  // was, Adam's step count included).
  double reduce_gradients();
  void apply(double lr, double grad_norm);
  // After reduce_gradients with more than one DP rank: the squared L2 norm of this rank's own
  // gradient, before the DP sum (the reduce-scatter leaves it in the flat buffer), over the whole
  // model (summed over the model-parallel groups; a replicated parameter once). Collective over
  // the model-parallel groups. The gradient noise scale's small-batch norm (noise_scale.h).
  double replica_grad_sq() const;
  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t steps) { step_ = steps; }  // resuming: Adam's bias correction continues
  const Zero1& shard() const { return zero_; }
  Zero1& shard_mut() { return zero_; }  // the backward's and forward's hooks into the buckets
  const Tensor& exp_avg() const { return m_; }     // this rank's shard
  const Tensor& exp_avg_sq() const { return v_; }  // this rank's shard

 private:
  struct Piece {  // one parameter's part of the shard, shard-relative
    int64_t begin, end;
    float weight_decay;
    bool counted_in_norm;
  };
  double grad_norm() const;
  ParamStore& params_;
  OptimConfig cfg_;
  Zero1 zero_;
  std::vector<Communicator*> norm_groups_;  // DP first (when there is one), then the model-parallel groups
  size_t model_parallel_from_ = 0;          // norm_groups_[model_parallel_from_..] are the model-parallel ones
  std::vector<Piece> pieces_;
  Tensor m_, v_;
  int64_t step_ = 0;
};

// Learning rate for 0-based step `step` of `total` (FACTS-style schedules):
// warmup linear from lr/warmup to lr, then constant | linear to min_lr | cosine to min_lr |
// wsd (stable at lr, then linear to min_lr over the last decay_fraction of the run).
double lr_at(double lr, const ScheduleConfig& schedule, int64_t step, int64_t total);

}  // namespace llamatron
