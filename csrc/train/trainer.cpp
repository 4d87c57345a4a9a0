#include "llamatron/trainer.h"

#include <chrono>

#include <omp.h>

#include "llamatron/backend.h"
#include "llamatron/errors.h"
#include "llamatron/pipeline.h"

namespace llamatron {

Trainer::Trainer(const RunConfig& cfg, Communicator& world) : cfg_(cfg) {
  cfg_.validate();
  std::function<std::unique_ptr<Communicator>(std::unique_ptr<Communicator>)> device_group;
  if (cfg_.train.device == "cuda")  // NCCL groups on GPUs
    device_group = [](std::unique_ptr<Communicator> g) { return backend_for(Device::CUDA).device_group(std::move(g)); };
  grid_ = std::make_unique<ProcessGrid>(world, cfg_.parallel, device_group);
  if (const int64_t global = cfg_.train.global_batch_size; global > 0) {
    const int64_t per_micro = cfg_.train.batch_size * grid_->dp();
    if (global % per_micro != 0)
      throw Error("train.global_batch_size (" + std::to_string(global) + ") must be divisible by train.batch_size (" +
                  std::to_string(cfg_.train.batch_size) + ") x data-parallel ranks (" + std::to_string(grid_->dp()) + ") = " +
                  std::to_string(per_micro) + ": change one of them");
    cfg_.train.grad_accum_steps = global / per_micro;
  }
  if (cfg_.train.threads > 0) omp_set_num_threads(static_cast<int>(cfg_.train.threads));
  data_ = make_token_source(cfg_);  // first: a bad dataset fails before any large allocation
  model_ = std::make_unique<LlamaModel>(cfg_.model, cfg_.train.precision == "fp32" ? DType::F32 : DType::BF16,
                                        cfg_.train.device == "cuda" ? Device::CUDA : Device::CPU,
                                        ModelShard{grid_->dp(), grid_->tp(), grid_->tp_rank(), &grid_->tp_group(), grid_->pp(),
                                                   grid_->pp_rank(), cfg_.parallel.pipeline_layers});
  model_->init_weights(cfg_.train.seed);
  optim_ = std::make_unique<AdamW>(model_->params(), cfg_.optim,
                                   OptimizerGroups{&grid_->dp_group(), cfg_.parallel.grad_reduce_dtype == "bf16" ? DType::BF16 : DType::F32,
                                                   {&grid_->model_parallel_group()}});
}

const int32_t* Trainer::local_rows(const int32_t* global_batch) const {
  return global_batch + grid_->dp_rank() * cfg_.train.batch_size * (cfg_.train.seq_len + 1);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t B = cfg_.train.batch_size, T = cfg_.train.seq_len, M = cfg_.train.grad_accum_steps;
  const int64_t G = B * grid_->dp();  // sequences per global micro-batch
  // Every rank draws the whole step (the same stream as one process training G-sequence
  // micro-batches) and trains its rows: the loss is the mean over all counted targets of the step,
  // so each micro-batch's gradient is scaled by 1 / (targets in the whole global step).
  tokens_.resize(static_cast<size_t>(M * G * (T + 1)));
  for (int64_t m = 0; m < M; ++m) data_->next_batch(G, T, tokens_.data() + m * G * (T + 1));
  int64_t counted = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b = 0; b < G; ++b)
      for (int64_t t = 1; t <= T; ++t) counted += tokens_[(m * G + b) * (T + 1) + t] != kIgnoreIndex;
  const float scale = counted > 0 ? 1.0f / counted : 0.0f;

  model_->params().zero_grads();
  double loss_sum = train_1f1b(*model_, grid_->pp_group(), M, [&](int64_t m) { return local_rows(tokens_.data() + m * G * (T + 1)); },
                               B, T, scale);
  model_->finish_gradients();
  grid_->pp_group().all_reduce(&loss_sum, 1, ReduceOp::Sum);  // the loss is the last stage's
  grid_->dp_group().all_reduce(&loss_sum, 1, ReduceOp::Sum);
  StepStats s;
  s.lr = lr_at(cfg_.optim, step_, cfg_.train.steps);
  s.grad_norm = optim_->step(s.lr);
  s.step = ++step_;
  tokens_seen_ += M * G * T;
  s.tokens_seen = tokens_seen_;
  s.loss = counted > 0 ? loss_sum / counted : 0.0;
  s.step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = M * G * T / (s.step_ms / 1e3);
  return s;
}

void Trainer::run(const std::function<void(const StepStats&)>& on_step) {
  while (step_ < cfg_.train.steps) on_step(step());
}

double Trainer::evaluate(TokenSource& source, int64_t batches) {
  const int64_t B = cfg_.train.batch_size, T = cfg_.train.seq_len, G = B * grid_->dp();
  std::vector<int32_t> tokens(static_cast<size_t>(G * (T + 1)));
  double sum = 0;
  int64_t counted = 0;
  for (int64_t i = 0; i < batches; ++i) {
    source.next_batch(G, T, tokens.data());
    sum += forward_pipeline(*model_, grid_->pp_group(), local_rows(tokens.data()), B, T);
    for (int64_t b = 0; b < G; ++b)
      for (int64_t t = 1; t <= T; ++t) counted += tokens[b * (T + 1) + t] != kIgnoreIndex;
  }
  grid_->pp_group().all_reduce(&sum, 1, ReduceOp::Sum);
  grid_->dp_group().all_reduce(&sum, 1, ReduceOp::Sum);
  return counted > 0 ? sum / counted : 0.0;
}

}  // namespace llamatron
