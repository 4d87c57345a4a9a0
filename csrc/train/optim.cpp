#include "llamatron/optim.h"

#include <algorithm>
#include <cmath>

#include "llamatron/backend.h"
#include "llamatron/errors.h"
#include "llamatron/memory.h"
#include "ops/cpu/cpu_ops.h"

namespace llamatron {

namespace {
bool decayed(const ParamSpec& s, const OptimConfig& c) { return !s.is_norm && (!s.is_embedding || c.decay_embeddings); }
double sum_squares(const Tensor& part) {
  return part.device() != Device::CPU ? backend_for(part.device()).sum_squares(part) : cpu::sum_squares(part.data<float>(), part.numel());
}
}  // namespace

AdamW::AdamW(ParamStore& params, const OptimConfig& cfg, const OptimizerGroups& groups)
    : params_(params), cfg_(cfg), zero_(params, groups.dp ? *groups.dp : self_group(), groups.zero1),
      m_(counted_as(MemCategory::Optimizer, [&] { return Tensor::zeros({zero_.size()}, DType::F32, params.device()); })),
      v_(counted_as(MemCategory::Optimizer, [&] { return Tensor::zeros({zero_.size()}, DType::F32, params.device()); })) {
  if (groups.dp) norm_groups_.push_back(groups.dp);
  model_parallel_from_ = norm_groups_.size();
  norm_groups_.insert(norm_groups_.end(), groups.model_parallel.begin(), groups.model_parallel.end());
  const int64_t lo = zero_.begin(), hi = lo + zero_.size();
  for (const ParamSpec& s : params_.specs()) {
    const int64_t b = std::max(lo, s.offset), e = std::min(hi, s.offset + s.numel());
    if (b < e)
      pieces_.push_back({b - lo, e - lo, decayed(s, cfg_) ? static_cast<float>(cfg_.weight_decay) : 0.0f, s.counted_in_norm});
  }
}

// Over this shard's pieces that count (a replicated parameter counts on one of its holders), then
// summed over the DP and model-parallel groups in fp64.
double AdamW::grad_norm() const {
  const Tensor& g = zero_.grad_shard();
  double sum = 0;
  for (const Piece& p : pieces_) {
    if (!p.counted_in_norm) continue;
    sum += sum_squares(g.view(p.begin, {p.end - p.begin}));
  }
  for (Communicator* c : norm_groups_) c->all_reduce(&sum, 1, ReduceOp::Sum);
  return std::sqrt(sum);
}

double AdamW::replica_grad_sq() const {
  LT_CHECK(zero_.group().size() > 1, "replica_grad_sq needs the unreduced gradient: with one DP rank the buffer is the sum");
  const Tensor& g = params_.grads_flat();
  double sum = 0;
  for (const ParamSpec& s : params_.specs())
    if (s.counted_in_norm) sum += sum_squares(g.view(s.offset, {s.numel()}));
  for (size_t i = model_parallel_from_; i < norm_groups_.size(); ++i) norm_groups_[i]->all_reduce(&sum, 1, ReduceOp::Sum);
  return sum;
}

double AdamW::step(double lr) {
  const double norm = reduce_gradients();
  apply(lr, norm);
  return norm;
}

double AdamW::reduce_gradients() {
  zero_.reduce_gradients();
  return grad_norm();
}

void AdamW::apply(double lr, double norm) {
  ++step_;
  float clip = 1.0f;
  if (cfg_.max_grad_norm > 0 && norm > 0) clip = static_cast<float>(std::min(1.0, cfg_.max_grad_norm / (norm + 1e-6)));
  const Tensor &master = zero_.master_shard(), &grads = zero_.grad_shard(), param = zero_.param_shard();
  if (params_.device() != Device::CPU) {  // one fused launch over the shard, weight decay per piece
    std::vector<int64_t> range_end;
    std::vector<float> range_wd;
    for (const Piece& p : pieces_) range_end.push_back(p.end), range_wd.push_back(p.weight_decay);
    if (range_end.empty()) range_end.push_back(0), range_wd.push_back(0.0f);
    range_end.back() = zero_.size();  // the padding after the last piece: zero gradients, zero weights
    backend_for(params_.device())
        .adamw(master, grads, m_, v_, param, range_end, range_wd,
               {static_cast<float>(lr), static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                static_cast<float>(cfg_.eps), clip, step_});
  } else {
    for (const Piece& p : pieces_) {
      const cpu::AdamWParams ap{static_cast<float>(lr), static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                                static_cast<float>(cfg_.eps), p.weight_decay, step_, clip};
      float* w = master.data<float>() + p.begin;
      const float* g = grads.data<float>() + p.begin;
      float *m = m_.data<float>() + p.begin, *v = v_.data<float>() + p.begin;
      if (params_.master_is_params())
        cpu::adamw_step<float>(w, g, m, v, w, p.end - p.begin, ap);
      else
        cpu::adamw_step<bf16>(w, g, m, v, param.data<bf16>() + p.begin, p.end - p.begin, ap);
    }
  }
  zero_.gather_params();
}

double lr_at(double lr, const ScheduleConfig& c, int64_t step, int64_t total) {
  if (step < c.warmup_steps) return lr * (step + 1) / c.warmup_steps;
  const double span = std::max<int64_t>(1, total - c.warmup_steps);
  const double progress = std::clamp((step - c.warmup_steps) / span, 0.0, 1.0);  // 0 .. 1 after warmup
  if (c.decay_style == "constant") return lr;
  if (c.decay_style == "linear") return lr + (c.min_lr - lr) * progress;
  if (c.decay_style == "cosine") return c.min_lr + 0.5 * (lr - c.min_lr) * (1.0 + std::cos(M_PI * progress));
  // wsd: warmup, stable, then a linear decay over the final decay_fraction of all steps.
  const double decay_steps = c.decay_fraction * total;
  const double decay_start = total - decay_steps;
  if (step < decay_start || decay_steps <= 0) return lr;
  return lr + (c.min_lr - lr) * std::clamp((step + 1 - decay_start) / decay_steps, 0.0, 1.0);
}

}  // namespace llamatron
