#include "llamatron/optim.h"

#include <algorithm>
#include <cmath>

#include "llamatron/backend.h"
#include "ops/cpu/cpu_ops.h"

namespace llamatron {

AdamW::AdamW(ParamStore& params, const OptimConfig& cfg)
    : params_(params), cfg_(cfg), m_(Tensor::zeros({params.numel()}, DType::F32, params.device())),
      v_(Tensor::zeros({params.numel()}, DType::F32, params.device())) {}

namespace {
bool decayed(const ParamSpec& s, const OptimConfig& c) { return !s.is_norm && (!s.is_embedding || c.decay_embeddings); }
}  // namespace

double AdamW::step(double lr) {
  ++step_;
  const Tensor& grads = params_.grads_flat();
  const bool on_device = params_.device() != Device::CPU;
  const double norm = std::sqrt(on_device ? backend_for(params_.device()).sum_squares(grads)
                                          : cpu::sum_squares(grads.data<float>(), grads.numel()));
  float clip = 1.0f;
  if (cfg_.max_grad_norm > 0 && norm > 0) clip = static_cast<float>(std::min(1.0, cfg_.max_grad_norm / (norm + 1e-6)));
  if (on_device) {  // one fused launch over the flat buffer, weight decay per parameter range
    std::vector<int64_t> range_end;
    std::vector<float> range_wd;
    for (const ParamSpec& s : params_.specs()) {
      range_end.push_back(s.offset + s.numel());
      range_wd.push_back(decayed(s, cfg_) ? static_cast<float>(cfg_.weight_decay) : 0.0f);
    }
    range_end.back() = params_.numel();
    backend_for(params_.device())
        .adamw(params_.master_flat(), grads, m_, v_, params_.params_flat(), range_end, range_wd,
               {static_cast<float>(lr), static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                static_cast<float>(cfg_.eps), clip, step_});
    return norm;
  }
  for (const ParamSpec& s : params_.specs()) {
    const bool decay = decayed(s, cfg_);
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
