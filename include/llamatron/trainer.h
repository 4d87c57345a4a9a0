// The single-process training loop: micro-batches with gradient accumulation, clipping, AdamW,
// the LR schedule, and one log record per step.
#pragma once
#include <functional>
#include <memory>

#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/model.h"
#include "llamatron/optim.h"

namespace llamatron {

struct StepStats {
  int64_t step = 0;         // 1-based
  int64_t tokens_seen = 0;  // input tokens consumed so far
  double lr = 0, loss = 0, grad_norm = 0, tokens_per_s = 0, step_ms = 0;
};

class Trainer {
 public:
  explicit Trainer(const RunConfig& cfg);
  StepStats step();  // one optimizer step over grad_accum_steps micro-batches
  // Runs cfg.train.steps steps, calling on_step after each.
  void run(const std::function<void(const StepStats&)>& on_step);
  // Mean loss of the current weights on `batches` fresh batches from `source` (no update).
  double evaluate(TokenSource& source, int64_t batches);

  LlamaModel& model() { return *model_; }
  TokenSource& data() { return *data_; }
  const RunConfig& config() const { return cfg_; }

 private:
  RunConfig cfg_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<AdamW> optim_;
  std::unique_ptr<TokenSource> data_;
  std::vector<int32_t> tokens_;
  int64_t step_ = 0, tokens_seen_ = 0;
};

}  // namespace llamatron
