// The training loop on this rank of the process grid: micro-batches with gradient accumulation,
// clipping, AdamW (ZeRO-1 over the data-parallel group), the LR schedule, one log record per step.
#pragma once
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "llamatron/batch_ramp.h"
#include "llamatron/checkpoint.h"
#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/grid.h"
#include "llamatron/stragglers.h"
#include "llamatron/model.h"
#include "llamatron/noise_scale.h"
#include "llamatron/optim.h"
#include "llamatron/topology.h"

namespace llamatron {

struct StepStats {
  int64_t step = 0;         // 1-based
  int64_t tokens_seen = 0;  // input tokens consumed so far
  int64_t global_batch_size = 0;  // sequences this step trained (smaller during train.rampup_batch_size)
  double lr = 0, loss = 0, grad_norm = 0, tokens_per_s = 0, step_ms = 0;
  double exposed_comm_ms = 0;  // of step_ms, the time this rank waited on communication (the part not hidden)
  int64_t epoch = 0;        // passes over the training data completed
  bool skipped = false;     // no update this step (NaN/Inf, or an anomaly with action skip)
  std::string anomaly;      // why, when this step was not normal ("" otherwise)
  int64_t bad_steps = 0, skipped_steps = 0;  // totals so far: NaN/Inf steps, skipped updates
  // logging.gns: the mean over DP ranks of |G_rank|² (each rank's gradient as the mean over its own
  // samples) and the noise scale B_simple in sequences after this step (NaN until defined); else NaN.
  double gns_rank_grad_sq = std::nan(""), gns = std::nan("");
  double valid_loss = -1;   // mean validation loss when this step evaluated (train.eval_every), else -1
  std::string stragglers;   // at the end of a log interval: the ranks much slower than their peers (stragglers.h), or ""
};

// SIGTERM and SIGINT then ask a running Trainer::run to save and stop cleanly; outside it (set-up,
// a stuck read) or at a second signal, the process exits at once (128 + signal), printing why
// unless stop_signals_speak(false) (ranks other than 0). Call it first, before anything starts a
// thread (OpenMP, MPI, CUDA): they inherit the blocked signals, and one thread of its own takes them.
void install_stop_signals();
void stop_signals_speak(bool speaks);

// Before any large allocation: the memory this layout needs on its fullest rank (the planner's
// accounting) against the GPU's or the machine's, and train.threads against its CPUs. Collective;
// an Error with the figures on every rank.
void check_resources(const RunConfig& cfg, const ProcessGrid& grid);

class Trainer {
 public:
  // world: the processes that train together (a world of one by default); the layout is
  // cfg.parallel, checked against world.size().
  explicit Trainer(const RunConfig& cfg, Communicator& world = self_group());
  ~Trainer();
  // Waits for the communication a step leaves in flight (ZeRO-1's parameter all-gather under
  // parallel.overlap_param_gather): after it every parameter is current. Checkpoints, evaluation
  // through forward and the end of run() do it themselves.
  void settle();
  StepStats step();  // one optimizer step over grad_accum_steps micro-batches (fewer during the batch ramp-up)
  // Runs up to cfg.train.steps steps, calling on_step after each; saves checkpoints every
  // checkpoint.every steps and at the end, and on SIGTERM / SIGINT (install_stop_signals) saves
  // and returns after the current step.
  void run(const std::function<void(const StepStats&)>& on_step);
  int stopped_by_signal() const { return stopped_by_signal_; }  // the signal, or 0
  const std::string& resumed_from() const { return resumed_from_; }  // the checkpoint loaded, or ""
  // Mean loss of the current weights on samples [0, batches * global micro-batch) of `source`, the
  // same ones every call (no update); each DP rank evaluates its rows.
  double evaluate(const TokenSource& source, int64_t batches);
  // The validation source of the config (nullptr when there is none).
  const TokenSource* validation() const { return valid_.get(); }
  // Samples of the training stream consumed so far: where a resumed run continues.
  int64_t data_position() const { return position_; }
  void set_data_position(int64_t samples) { position_ = samples; }
  // What a checkpoint stores besides the tensors.
  struct Progress {
    int64_t step = 0, tokens_seen = 0, data_position = 0;
  };
  Progress progress() const { return {step_, tokens_seen_, position_}; }
  void restore(const Progress& p) { step_ = p.step, tokens_seen_ = p.tokens_seen, position_ = p.data_position; }
  AdamW& optimizer_mut() { return *optim_; }
  // Fault injection (tests of the guards): the next step's loss and gradients times `factor`
  // (NaN: a NaN step).
  void inject_next_step(double factor) { inject_ = factor; }

  LlamaModel& model() {  // current parameters (settled)
    settle();
    return *model_;
  }
  TokenSource& data() { return *data_; }
  const RunConfig& config() const { return cfg_; }
  const BatchRamp& batch_ramp() const { return ramp_; }
  const ProcessGrid& grid() const { return *grid_; }
  const HostMap& hosts() const { return hosts_; }  // where every rank runs
  const AdamW& optimizer() const { return *optim_; }

 private:
  // Reads this DP rank's rows of `micro_batches` global micro-batches (B * dp samples each,
  // starting at sample `first`): rows [dp_rank * B, (dp_rank + 1) * B) of each; returns the count
  // of targets of all the global micro-batches (summed over the DP group); `local`, when given, gets
  // this rank's own count.
  int64_t read_local(const TokenSource& source, int64_t first, int64_t micro_batches, std::vector<int32_t>& tokens,
                     int64_t* local = nullptr) const;
  // The stability guards on this step's loss and norm: marks it skipped or throws (train.*).
  void guard(StepStats& s);
  // At the end of a log interval: every rank's compute and wait times over it, gathered, and the
  // stragglers among them (train.straggler_factor). Collective over the world.
  std::string check_stragglers();
  RunConfig cfg_;
  std::unique_ptr<ProcessGrid> grid_;
  HostMap hosts_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<AdamW> optim_;
  std::unique_ptr<TokenSource> data_, valid_;
  DocumentRules documents_;  // data.eod_id and the document switches, resolved against the data
  std::vector<int32_t> tokens_;
  NoiseScale noise_;  // logging.gns (its smoothing restarts when a run resumes)
  BatchRamp ramp_;  // the global batch of each step (constant unless train.rampup_batch_size)
  int64_t step_ = 0, tokens_seen_ = 0, position_ = 0;
  int stopped_by_signal_ = 0;
  double inject_ = 1.0;
  int64_t bad_in_a_row_ = 0, bad_steps_ = 0, skipped_steps_ = 0;
  std::vector<double> recent_loss_, recent_norm_;  // the last anomaly_window accepted steps
  RankTimes interval_;  // this rank's times since the last straggler check
  std::unique_ptr<CheckpointDirLock> dir_lock_;  // held from set-up to the end (one run per checkpoint.dir)
  std::unique_ptr<AsyncCheckpointer> async_ = std::make_unique<AsyncCheckpointer>();
  std::string resumed_from_;
  int64_t traced_last_ = 0;  // the last of logging.trace_steps: the trace is written after it
};

}  // namespace llamatron
