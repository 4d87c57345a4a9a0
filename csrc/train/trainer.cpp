#include "llamatron/trainer.h"

#include <fmt/format.h>

#include <chrono>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <unistd.h>

#include "llamatron/backend.h"
#include "llamatron/checkpoint.h"
#include "llamatron/errors.h"
#include "llamatron/hardware.h"
#include "llamatron/pipeline.h"
#include "llamatron/planner.h"
#include "llamatron/trace.h"
#include "llamatron/watchdog.h"

namespace llamatron {
namespace {
// The watchdog's deadline for the set-up and the first step, over parallel.comm_timeout_s: they
// connect every pair of ranks, allocate every buffer and (on GPUs) load every kernel.
constexpr double kFirstStepTimeoutFactor = 5;
}  // namespace

Trainer::Trainer(const RunConfig& cfg, Communicator& world) : cfg_(cfg) {
  cfg_.validate();
  for (int64_t t : cfg_.logging.trace_steps) traced_last_ = std::max(traced_last_, t);
  std::function<std::unique_ptr<Communicator>(std::unique_ptr<Communicator>)> device_group;
  if (cfg_.train.device == "cuda")  // NCCL groups on GPUs
    device_group = [](std::unique_ptr<Communicator> g) { return backend_for(Device::CUDA).device_group(std::move(g)); };
  grid_ = std::make_unique<ProcessGrid>(world, cfg_.parallel, device_group);
  hosts_ = gather_hosts(world);
  grid_->comm_stats().host_of = hosts_.host_of;  // inter-host bytes, and hosts in the watchdog's messages
  watchdog::configure(cfg_.parallel.comm_timeout_s, kFirstStepTimeoutFactor);
  {
    std::string where = std::to_string(hosts_.hosts.size()) + " host(s):";
    for (size_t h = 0; h < hosts_.hosts.size(); ++h) where += " " + hosts_.hosts[h] + " (" + std::to_string(hosts_.ranks_on[h]) + " ranks)";
    watchdog::set_job(where);
  }
  // Placement sees context and data parallelism as one dimension (cp innermost of the two).
  if (const std::string spread = tp_spread_problem(hosts_, grid_->tp(), grid_->pp(), grid_->dp() * grid_->cp());
      cfg_.parallel.require_tp_in_node && !spread.empty())
    throw Error("parallel.require_tp_in_node: " + spread + ", or set parallel.require_tp_in_node=false");
  if (const int64_t global = cfg_.train.global_batch_size; global > 0) {
    const int64_t per_micro = cfg_.train.micro_batch_size * grid_->dp();
    if (global % per_micro != 0)
      throw Error("train.global_batch_size (" + std::to_string(global) + ") must be divisible by train.micro_batch_size (" +
                  std::to_string(cfg_.train.micro_batch_size) + ") x data-parallel ranks (" + std::to_string(grid_->dp()) + ") = " +
                  std::to_string(per_micro) + ": change one of them");
    // The micro-batch count follows from the global batch; a resolved config (a checkpoint's) has both.
    const bool given = cfg_.train.grad_accum_given || cfg_.train.grad_accum_steps != 1;
    if (given && cfg_.train.grad_accum_steps * per_micro != global)
      throw Error("train.global_batch_size (" + std::to_string(global) + ") is not train.micro_batch_size x train.grad_accum_steps x "
                  "data-parallel ranks (" + std::to_string(per_micro * cfg_.train.grad_accum_steps) + "): set one of "
                  "global_batch_size and grad_accum_steps, not both");
    cfg_.train.grad_accum_steps = global / per_micro;
  }
  cfg_.parallel.data_parallel = grid_->dp();  // resolved: the config logged and saved says what ran
  if (const int64_t v = cfg_.parallel.virtual_pipeline, pp = grid_->pp(); v > 1 && cfg_.train.grad_accum_steps % pp != 0)
    throw Error("parallel.virtual_pipeline (" + std::to_string(v) + ") needs a micro-batch count (train.grad_accum_steps, here " +
                std::to_string(cfg_.train.grad_accum_steps) + ") that is a multiple of parallel.pipeline_parallel (" + std::to_string(pp) +
                "): the interleaved schedule runs them in groups of pp");
  {  // every size of the ramp must be whole micro-batches (in groups of pp when interleaved)
    const int64_t per_micro = cfg_.train.micro_batch_size * grid_->dp();
    ramp_ = BatchRamp(cfg_.train, per_micro * cfg_.train.grad_accum_steps);
    const int64_t group = cfg_.parallel.virtual_pipeline > 1 ? grid_->pp() : 1;
    if (const int64_t bad = ramp_.first_unfit(per_micro, group); bad > 0)
      throw Error("train.rampup_batch_size passes through a global batch of " + std::to_string(bad) + " sequences, which is not " +
                  (bad % per_micro ? "a multiple of train.micro_batch_size x data-parallel ranks (" + std::to_string(per_micro) + ")"
                                   : std::to_string(bad / per_micro) + " micro-batch(es) in groups of parallel.pipeline_parallel (" +
                                         std::to_string(group) + ", interleaved)") +
                  ": change the start or the increment so that every size is");
  }
  if (cfg_.logging.gns && grid_->dp() < 2)
    throw Error("logging.gns needs at least 2 data-parallel ranks (here " + std::to_string(grid_->dp()) +
                "): the noise scale compares each rank's gradient with the global batch's; run with more ranks or set logging.gns=false");
  noise_ = NoiseScale(cfg_.logging.gns_ema);
  check_resources(cfg_, *grid_);  // before any large allocation
  if (cfg_.train.threads > 0) omp_set_num_threads(static_cast<int>(cfg_.train.threads));
  if (!cfg_.checkpoint.dir.empty()) dir_lock_ = std::make_unique<CheckpointDirLock>(cfg_.checkpoint.dir, grid_->world());
  // Reads of data and weights can fail on some ranks only (one node's copy of a file): every such
  // phase fails on every rank together.
  Communicator& all = grid_->world();
  fail_together(all, "", [&] {
    data_ = make_token_source(cfg_);  // first: a bad dataset fails before any large allocation
    valid_ = make_valid_source(cfg_);
    documents_ = document_rules(cfg_.data);
  });
  if (cfg_.train.eval_every > 0 && !valid_)
    throw Error("train.eval_every is set but there is no validation data: set data.valid_paths or data.valid_fraction");
  model_ = std::make_unique<LlamaModel>(cfg_.model, cfg_.train.precision == "fp32" ? DType::F32 : DType::BF16,
                                        cfg_.train.device == "cuda" ? Device::CUDA : Device::CPU,
                                        ModelShard{grid_->dp() * grid_->cp(), grid_->tp(), grid_->tp_rank(), &grid_->tp_group(), grid_->pp(),
                                                   grid_->pp_rank(), cfg_.parallel.pipeline_layers,
                                                   static_cast<int>(cfg_.parallel.virtual_pipeline), cfg_.parallel.sequence_parallel,
                                                   grid_->cp(), grid_->cp_rank(), grid_->cp() > 1 ? &grid_->cp_group() : nullptr});
  model_->init_weights(cfg_.train.seed);
  model_->set_recompute(parse_recompute(cfg_.train.recompute));
  model_->set_documents(documents_);
  // The eod id found beside the data goes into the config (and each checkpoint's config.yaml), so
  // `llamatron generate` and `logits` see the documents as training did.
  if (documents_.any()) cfg_.data.eod_id = documents_.eod_id;
  if (!cfg_.checkpoint.init_from.empty()) fail_together(all, "", [&] {  // hf:DIR: pretrained weights, a fresh optimizer
    const std::string dir = cfg_.checkpoint.init_from.substr(3);
    const std::unique_ptr<GlobalWeights> hf = hf_weights(dir);
    RunConfig from_hf;
    from_hf.model = hf->model();
    const auto have = config_values(from_hf), want = config_values(cfg_);
    for (const auto& [k, v] : have)
      if (k.rfind("model.", 0) == 0 && k != "model.ffn_dim" && k != "model.multiple_of" && k != "model.ffn_dim_multiplier" &&
          want.at(k) != v)
        throw Error("checkpoint.init_from " + dir + " is a model with " + k + "=" + v + " but the config has " + want.at(k) +
                    ": make the model section match the Hugging Face config.json");
    if (hf->model().resolved_ffn_dim() != cfg_.model.resolved_ffn_dim())
      throw Error("checkpoint.init_from " + dir + " has intermediate_size " + std::to_string(hf->model().resolved_ffn_dim()) +
                  " but the config's FFN width is " + std::to_string(cfg_.model.resolved_ffn_dim()));
    set_params(model_->params(), *hf);
  });
  Zero1Options zero1;
  zero1.wire = cfg_.parallel.grad_reduce_dtype == "bf16" ? DType::BF16 : DType::F32;
  zero1.bucket_bytes = static_cast<int64_t>(cfg_.parallel.bucket_size_mb * (1 << 20));
  zero1.overlap_grad_reduce = cfg_.parallel.overlap_grad_reduce;
  zero1.overlap_param_gather = cfg_.parallel.overlap_param_gather;
  // Gradients are summed, and ZeRO-1 shards the state, over DP x CP (each CP rank's gradient covers its positions).
  optim_ = std::make_unique<AdamW>(model_->params(), cfg_.optimizer, OptimizerGroups{&grid_->grad_group(), zero1, {&grid_->model_parallel_group()}});
  // The buckets' collectives start as the last backward finishes them and are waited on as the
  // next forward needs them (docs/parallelism.md, "Overlap").
  Zero1& buckets = optim_->shard_mut();
  model_->set_gradient_hook([&buckets](int64_t offset) { buckets.gradients_final_from(offset); });
  model_->set_param_hook([&buckets](int64_t lo, int64_t hi) { buckets.wait_params(lo, hi); });
  fail_together(all, "", [&] {
    if (const std::string dir = find_checkpoint(cfg_.checkpoint); !dir.empty()) {
      load_checkpoint(*this, dir);
      resumed_from_ = dir;
    }
  });
}

namespace {

// Stop signals. While a step loop runs (Trainer::run), the first SIGTERM / SIGINT asks it to finish
// the step, save and return; anywhere else (set-up, a data or checkpoint read, after the loop),
// and at a second signal, there is nothing a save could add to the last checkpoint, so the process
// says so and exits at once with 128 + the signal, as a shell reports a process a signal ended.
//
// No thread ever runs a handler: the signals are blocked in every thread (the mask is inherited)
// and one thread takes them with sigwait. A handler runs on the stack of whichever thread the
// signal interrupts, and oneDNN's JIT f32 GEMM kernels (before oneDNN 3.12, Debian's 2.x) point
// rsp into the heap while they run: the kernel's signal frame then overwrites heap memory
// (oneDNN issue #4845), which glibc later reports as "corrupted size vs. prev_size".
std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_in_step_loop{false};
std::atomic<bool> g_speaks{true};

void take_stop_signals(sigset_t set) {
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (g_in_step_loop.load() && g_stop_signal.load() == 0) {
      g_stop_signal = sig;
      continue;
    }
    static const char before[] = "llamatron: stopped by a signal outside the training steps (set-up or a read): nothing to save\n";
    static const char again[] = "llamatron: stopped by a second signal before the step finished: not saved; the last checkpoint is intact\n";
    static const char after[] = "llamatron: stopped by a second signal after the stop was handled\n";
    if (g_speaks.load()) {
      const char* say = g_stop_signal.load() == 0 ? before : g_in_step_loop.load() ? again : after;
      const ssize_t ignored = ::write(2, say, std::strlen(say));
      (void)ignored;
    }
    ::_exit(128 + sig);
  }
}

// The loop's scope: signals are requests inside it.
struct StepLoopScope {
  StepLoopScope() { g_in_step_loop = true; }
  ~StepLoopScope() { g_in_step_loop = false; }
};

}  // namespace

void install_stop_signals() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) throw Error("cannot block SIGTERM / SIGINT for the stop-signal thread");
    std::thread(take_stop_signals, set).detach();
  });
}

void stop_signals_speak(bool speaks) { g_speaks = speaks; }

void check_resources(const RunConfig& c, const ProcessGrid& grid) {
  Communicator& world = grid.world();
  // Every rank decides on the same figures (the fullest rank of the layout, the smallest machine),
  // so all fail together with one message or none does.
  double need_device = 0, need_host = 0;
  const bool cuda = c.train.device == "cuda";
  for (int pp = 0; pp < grid.pp(); ++pp)
    for (int tp = 0; tp < grid.tp(); ++tp) need_device = std::max(need_device, plan_memory(c, pp, tp).total());
  const double B = static_cast<double>(c.train.micro_batch_size), window = static_cast<double>(c.train.seq_length + 1);
  const double tokens = 4 * B * window * static_cast<double>(c.train.grad_accum_steps + c.train.eval_batches);  // int32 host buffers
  const double gpu = cuda ? static_cast<double>(backend_for(Device::CUDA).memory_bytes()) : 0;
  need_host = tokens + (gpu > 0 ? 0 : need_device);  // the emulated device's memory is the host's
  need_host *= node_local_size();
  double have[3] = {-static_cast<double>(host_memory_bytes()), -gpu, -static_cast<double>(host_cpus())};
  double want[2] = {need_host, static_cast<double>(c.train.threads)};
  world.all_reduce(have, 3, ReduceOp::Max);  // -max(-x) = min(x)
  world.all_reduce(want, 2, ReduceOp::Max);
  const double host = -have[0], device = -have[1], cpus = -have[2];
  const auto gib = [](double b) { return fmt::format("{:.1f} GiB", b / double(1 << 30)); };
  const std::string fix = "use more tensor or pipeline parallelism, train.recompute, a smaller train.micro_batch_size or a smaller model "
                          "(llamatron plan ranks the layouts that fit)";
  if (device > 0 && need_device > device)
    throw Error("this layout needs " + gib(need_device) + " of GPU memory on its fullest rank (weights, gradients, optimizer state and "
                "activations, as llamatron plan counts them) but the GPU has " + gib(device) + ": " + fix);
  if (host > 0 && want[0] > host)
    throw Error("this run needs " + gib(want[0]) + " of host memory on one machine (" +
                (device > 0 ? std::string("token buffers") : std::string("weights, gradients, optimizer state, activations and token buffers")) +
                " for its " + std::to_string(node_local_size()) + " process(es) there, as llamatron plan counts them) but the machine has " +
                gib(host) + ": " + fix);
  if (want[1] > cpus)
    throw Error("train.threads is " + std::to_string(c.train.threads) + ", more than the " + std::to_string(static_cast<int>(cpus)) +
                " logical CPUs of this machine: use 0 (all of them, or OMP_NUM_THREADS) or at most " + std::to_string(static_cast<int>(cpus)));
}

void Trainer::guard(StepStats& s) {
  const TrainConfig& t = cfg_.train;
  if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) {
    s.skipped = true, s.anomaly = "NaN/Inf loss or gradient";
    ++bad_steps_, ++skipped_steps_;
    if (++bad_in_a_row_ >= t.max_bad_steps)
      throw Error(std::to_string(bad_in_a_row_) + " steps in a row had a NaN/Inf loss or gradient (train.max_bad_steps): "
                  "stopping; lower optimizer.lr, check the data, or resume from an earlier checkpoint");
    return;
  }
  bad_in_a_row_ = 0;
  const auto mean = [](const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m += x / static_cast<double>(v.size());
    return m;
  };
  const bool full = static_cast<int64_t>(recent_loss_.size()) == t.anomaly_window;
  // "loss spike: 9.1 is 3.4x the mean 2.7 of the last 20 steps (train.spike_factor 3)"
  const auto describe = [&](const char* what, double value, double recent) {
    return fmt::format("{}: {:.4g} is {:.1f}x the mean {:.4g} of the last {} steps (train.spike_factor {:g})", what, value,
                       value / recent, recent, t.anomaly_window, t.spike_factor);
  };
  if (full && s.loss > t.spike_factor * mean(recent_loss_))
    s.anomaly = describe("loss spike", s.loss, mean(recent_loss_));
  else if (full && s.grad_norm > t.spike_factor * mean(recent_norm_))
    s.anomaly = describe("grad norm outlier", s.grad_norm, mean(recent_norm_));
  if (!s.anomaly.empty()) {
    if (t.anomaly_action == "stop") throw Error(s.anomaly + " at step " + std::to_string(step_ + 1) + " (train.anomaly_action=stop)");
    if (t.anomaly_action == "skip") {
      s.skipped = true, ++skipped_steps_;
      return;  // a skipped step does not enter the window
    }
  }
  recent_loss_.push_back(s.loss), recent_norm_.push_back(s.grad_norm);
  if (static_cast<int64_t>(recent_loss_.size()) > t.anomaly_window)
    recent_loss_.erase(recent_loss_.begin()), recent_norm_.erase(recent_norm_.begin());
}

int64_t Trainer::read_local(const TokenSource& source, int64_t first, int64_t micro_batches, std::vector<int32_t>& tokens,
                            int64_t* local) const {
  const int64_t B = cfg_.train.micro_batch_size, T = cfg_.train.seq_length, G = B * grid_->dp();
  tokens.resize(static_cast<size_t>(micro_batches * B * (T + 1)));
  double counted = 0;
  for (int64_t m = 0; m < micro_batches; ++m) {
    int32_t* rows = tokens.data() + m * B * (T + 1);
    source.read(first + m * G + grid_->dp_rank() * B, B, T, rows);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) counted += documents_.counts(rows + b * (T + 1), t);
  }
  if (local) *local = static_cast<int64_t>(counted);
  grid_->dp_group().all_reduce(&counted, 1, ReduceOp::Sum);
  return static_cast<int64_t>(counted);
}

std::string Trainer::check_stragglers() {
  Communicator& world = grid_->world();
  const RankTimes mine = interval_;
  interval_ = {};
  if (world.size() == 1 || cfg_.train.straggler_factor <= 0) return "";
  const float sent[2] = {static_cast<float>(mine.compute_ms), static_cast<float>(mine.wait_ms)};
  std::vector<float> all(2 * static_cast<size_t>(world.size()));
  world.all_gather(sent, all.data(), 2, DType::F32);
  std::vector<RankTimes> times(world.size());
  std::vector<int> stage(world.size());
  for (int r = 0; r < world.size(); ++r)
    times[r] = {all[2 * r], all[2 * r + 1]}, stage[r] = r / (grid_->tp() * grid_->cp() * grid_->dp());
  return find_stragglers(times, stage, hosts_.host_of, cfg_.train.straggler_factor);
}

void Trainer::settle() { optim_->shard_mut().wait_params(); }

Trainer::~Trainer() = default;

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  watchdog::set_step(step_ + 1);
  const std::vector<int64_t>& traced = cfg_.logging.trace_steps;
  const bool tracing = !cfg_.logging.trace_file.empty() && std::find(traced.begin(), traced.end(), step_ + 1) != traced.end();
  if (tracing) trace::start(step_ + 1, grid_->world(), cfg_.train.device == "cuda");
  const double exposed0 = grid_->comm_stats().exposed_us;
  const trace::Span step_span("step", "step " + std::to_string(step_ + 1));
  const int64_t B = cfg_.train.micro_batch_size, T = cfg_.train.seq_length;
  const int64_t G = B * grid_->dp();  // sequences per global micro-batch
  const int64_t M = ramp_.global_batch_at(position_) / G;  // train.grad_accum_steps, or fewer during the ramp-up
  // The step trains samples [position, position + M * G) of the stream (the same samples one
  // process would train with G-sequence micro-batches); this rank reads only its rows. The loss
  // is the mean over all counted targets of the step, so each micro-batch's gradient is scaled by
  // 1 / (targets in the whole global step).
  int64_t counted_here = 0;
  const int64_t counted = read_local(*data_, position_, M, tokens_, &counted_here);
  const float scale = static_cast<float>(inject_) * (counted > 0 ? 1.0f / static_cast<float>(counted) : 0.0f);

  model_->params().zero_grads();
  double loss_sum = train_1f1b(*model_, grid_->pp_group(), grid_->pp_grad_group(), M,
                               [&](int64_t m) { return tokens_.data() + m * B * (T + 1); }, B, T, scale);
  model_->finish_gradients();
  grid_->pp_group().all_reduce(&loss_sum, 1, ReduceOp::Sum);  // the loss is the last stage's
  grid_->grad_group().all_reduce(&loss_sum, 1, ReduceOp::Sum);  // each CP rank's covers its positions
  loss_sum *= inject_;
  inject_ = 1.0;
  StepStats s;
  s.global_batch_size = M * G;
  s.lr = lr_at(cfg_.optimizer.lr, cfg_.schedule, step_, cfg_.train.steps);
  s.loss = counted > 0 ? loss_sum / counted : 0.0;
  s.grad_norm = optim_->reduce_gradients();
  guard(s);  // every rank sees the same loss and norm (all-reduced), so all decide alike
  if (cfg_.logging.gns) {
    // This rank's gradient is (1 / all targets) x the sum over its own targets: scaled to the mean
    // over its own, it is a small batch's gradient; the DP sum, the global batch's.
    const double to_mean = counted_here > 0 ? static_cast<double>(counted) / static_cast<double>(counted_here) : 0.0;
    double small_sq = optim_->replica_grad_sq() * to_mean * to_mean;
    grid_->dp_group().all_reduce(&small_sq, 1, ReduceOp::Sum);
    s.gns_rank_grad_sq = small_sq / grid_->dp();
    const double big_sq = s.grad_norm * s.grad_norm;
    if (!s.skipped)  // a NaN or skipped step does not enter the EMAs
      s.gns = noise_.update(s.gns_rank_grad_sq, static_cast<double>(M * B), big_sq, static_cast<double>(M * G));
  }
  if (!s.skipped) {
    const trace::Span span("optimizer", "optimizer");
    optim_->apply(s.lr, s.grad_norm);
  }
  s.bad_steps = bad_steps_, s.skipped_steps = skipped_steps_;
  s.step = ++step_;
  position_ += M * G;
  s.epoch = data_->epoch(position_);
  tokens_seen_ += M * G * T;
  s.tokens_seen = tokens_seen_;
  s.step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  s.exposed_comm_ms = (grid_->comm_stats().exposed_us - exposed0) / 1e3;
  if (tracing) trace::stop();
  s.tokens_per_s = M * G * T / (s.step_ms / 1e3);
  interval_.compute_ms += s.step_ms - s.exposed_comm_ms, interval_.wait_ms += s.exposed_comm_ms;
  if (step_ % cfg_.logging.log_every == 0 || step_ == cfg_.train.steps) s.stragglers = check_stragglers();
  if (cfg_.train.eval_every > 0 && (step_ % cfg_.train.eval_every == 0 || step_ == cfg_.train.steps))
    s.valid_loss = evaluate(*valid_, cfg_.train.eval_batches);
  if (tracing && step_ == traced_last_) trace::write(cfg_.logging.trace_file, grid_->world());
  return s;
}

void Trainer::run(const std::function<void(const StepStats&)>& on_step) {
  const CheckpointConfig& ck = cfg_.checkpoint;
  const StepLoopScope loop;
  while (step_ < cfg_.train.steps) {
    on_step(step());
    // A stop signal on any rank stops every rank after the same step (they agree on it here).
    double stop = g_stop_signal.load();
    grid_->world().all_reduce(&stop, 1, ReduceOp::Max);
    if (stop > 0) stopped_by_signal_ = static_cast<int>(stop);
    const bool save = !ck.dir.empty() && (stop > 0 || step_ == cfg_.train.steps || (ck.every > 0 && step_ % ck.every == 0));
    if (save) settle();  // a checkpoint holds the gathered parameters
    if (save && ck.async && stop == 0 && step_ < cfg_.train.steps) {
      async_->start(*this);  // written while the next steps train
    } else if (save) {
      async_->finish();
      save_checkpoint(*this);
    }
    if (stop > 0) break;
  }
  settle();
  async_->finish();
}

double Trainer::evaluate(const TokenSource& source, int64_t batches) {
  const int64_t B = cfg_.train.micro_batch_size, T = cfg_.train.seq_length;
  std::vector<int32_t> tokens;
  const int64_t counted = read_local(source, 0, batches, tokens);
  double sum = 0;
  for (int64_t i = 0; i < batches; ++i) sum += forward_pipeline(*model_, grid_->pp_group(), tokens.data() + i * B * (T + 1), B, T);
  grid_->pp_group().all_reduce(&sum, 1, ReduceOp::Sum);
  grid_->grad_group().all_reduce(&sum, 1, ReduceOp::Sum);
  return counted > 0 ? sum / counted : 0.0;
}

}  // namespace llamatron
