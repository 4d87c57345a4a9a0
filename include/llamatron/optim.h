// AdamW over the flat buffers of a ParamStore, global grad-norm clipping, LR schedules.
#pragma once
#include <cstdint>

#include "llamatron/config.h"
#include "llamatron/params.h"

namespace llamatron {

class AdamW {
 public:
  AdamW(ParamStore& params, const OptimConfig& cfg);
  // Clips the gradients to max_grad_norm by their global L2 norm (torch's clip_grad_norm_:
  // scale = max_norm / (norm + 1e-6) when below 1, fused into the update), then takes one AdamW
  // step at `lr`. Returns the pre-clip gradient norm.
  double step(double lr);
  int64_t steps_taken() const { return step_; }
  const Tensor& exp_avg() const { return m_; }
  const Tensor& exp_avg_sq() const { return v_; }

 private:
  ParamStore& params_;
  OptimConfig cfg_;
  Tensor m_, v_;
  int64_t step_ = 0;
};

// Learning rate for 0-based step `step` of `total` (FACTS-style schedules):
// warmup linear from lr/warmup to lr, then constant | linear to min_lr | cosine to min_lr |
// wsd (stable at lr, then linear to min_lr over the last decay_fraction of the run).
double lr_at(const OptimConfig& cfg, int64_t step, int64_t total);

}  // namespace llamatron
