// Batch-size ramp-up (train.rampup_batch_size: [start, increment, ramp_samples]), Megatron's
// --rampup-batch-size rule: the global batch starts at `start` sequences and grows by `increment`
// after every ramp_samples / ((global - start) / increment) consumed samples, until it is the
// configured global batch. The step's size follows from the samples consumed before it, so a run
// resumed from a checkpoint (which stores them) continues the ramp exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llamatron/config.h"

namespace llamatron {

class BatchRamp {
 public:
  BatchRamp() = default;  // off: every step has the configured global batch
  // The ramp of `train` towards `global` sequences (the resolved global batch); an Error naming the
  // problem when train.rampup_batch_size is not [start, increment, samples] with
  // 0 < start <= global, increment > 0 dividing global - start, samples >= 0.
  BatchRamp(const TrainConfig& train, int64_t global);
  bool on() const { return start_ > 0 && start_ < global_; }
  // Sequences in the step that begins after `consumed` samples (Megatron's update_num_microbatches).
  int64_t global_batch_at(int64_t consumed) const;
  int64_t first_size() const { return on() ? start_ : global_; }
  // Every size the ramp passes through, smallest first, the full batch last (as many as the ramp
  // has increments: for tests and small ramps; first_unfit does not list them).
  std::vector<int64_t> sizes() const;
  // The first size that is not a whole number of micro-batches of `per_micro` sequences (micro
  // batch x DP), or a count of them that is not a multiple of `group` (pipeline stages, with the
  // interleaved schedule; else 1); 0 when every size is.
  int64_t first_unfit(int64_t per_micro, int64_t group) const;
  // "16 -> 64 sequences (+16 every 250 samples, 1000 samples)" for the logs and the planner.
  std::string describe() const;

 private:
  int64_t start_ = 0, increment_ = 0, samples_ = 0, global_ = 0;
  double samples_per_increment_ = 0;
};

}  // namespace llamatron
