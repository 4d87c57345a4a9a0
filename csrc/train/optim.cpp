#include "llamatron/optim.h"

#include <algorithm>
#include <cmath>

#include "ops/cpu/cpu_ops.h"

namespace llamatron {

AdamW::AdamW(ParamStore& params, const OptimConfig& cfg)
    : params_(params), cfg_(cfg), m_(Tensor::zeros({params.numel()}, DType::F32)),
      v_(Tensor::zeros({params.numel()}, DType::F32)) {}

double AdamW::step(double lr) {
  ++step_;
  const Tensor& grads = params_.grads_flat();
  const double norm = std::sqrt(cpu::sum_squares(grads.data<float>(), grads.numel()));
  float clip = 1.0f;
  if (cfg_.max_grad_norm > 0 && norm > 0) clip = static_cast<float>(std::min(1.0, cfg_.max_grad_norm / (norm + 1e-6)));
  for (const ParamSpec& s : params_.specs()) {
    const bool decay = !s.is_norm && (!s.is_embedding || cfg_.decay_embeddings);
    cpu::AdamWParams p{static_cast<float>(lr), static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                       static_cast<float>(cfg_.eps), decay ? static_cast<float>(cfg_.weight_decay) : 0.0f, step_, clip};
    float* master = params_.master_flat().data<float>() + s.offset;
    const float* g = grads.data<float>() + s.offset;
    float* m = m_.data<float>() + s.offset;
    float* v = v_.data<float>() + s.offset;
    if (params_.master_is_params())
      cpu::adamw_step<float>(master, g, m, v, master, s.numel(), p);
    else
      cpu::adamw_step<bf16>(master, g, m, v, params_.params_flat().data<bf16>() + s.offset, s.numel(), p);
  }
  return norm;
}

double lr_at(const OptimConfig& c, int64_t step, int64_t total) {
  if (step < c.warmup_steps) return c.lr * (step + 1) / c.warmup_steps;
  const double span = std::max<int64_t>(1, total - c.warmup_steps);
  const double progress = std::clamp((step - c.warmup_steps) / span, 0.0, 1.0);  // 0 .. 1 after warmup
  if (c.schedule == "constant") return c.lr;
  if (c.schedule == "linear") return c.lr + (c.min_lr - c.lr) * progress;
  if (c.schedule == "cosine") return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + std::cos(M_PI * progress));
  // wsd: warmup, stable, then a linear decay over the final decay_fraction of all steps.
  const double decay_steps = c.decay_fraction * total;
  const double decay_start = total - decay_steps;
  if (step < decay_start || decay_steps <= 0) return c.lr;
  return c.lr + (c.min_lr - c.lr) * std::clamp((step + 1 - decay_start) / decay_steps, 0.0, 1.0);
}

}  // namespace llamatron
