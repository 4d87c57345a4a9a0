#include <cmath>

#include "ops/cpu/cpu_ops.h"

namespace llamatron::cpu {

// torch.optim.AdamW, step by step: p -= lr*wd*p; m, v moments; p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps).
template <typename T>
void adamw_step(float* master, const float* grad, float* m, float* v, T* param, int64_t n, const AdamWParams& p) {
  const float bc1 = 1.0f - static_cast<float>(std::pow(p.beta1, p.step));
  const float bc2_sqrt = std::sqrt(1.0f - static_cast<float>(std::pow(p.beta2, p.step)));
  const float step_size = p.lr / bc1;
  const float decay = 1.0f - p.lr * p.weight_decay;
  auto update = [&](int64_t i) {
    const float g = grad[i] * p.grad_scale;
    const float mi = p.beta1 * m[i] + (1.0f - p.beta1) * g;
    const float vi = p.beta2 * v[i] + (1.0f - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float w = master[i] * decay - step_size * mi / (std::sqrt(vi) / bc2_sqrt + p.eps);
    master[i] = w;
    return w;
  };
  // Two loops rather than a branch inside one, so that each vectorizes.
  if (static_cast<void*>(param) == static_cast<void*>(master)) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) update(i);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) param[i] = from_f32<T>(update(i));
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, float*, int64_t, const AdamWParams&);
template void adamw_step<bf16>(float*, const float*, float*, float*, bf16*, int64_t, const AdamWParams&);

}  // namespace llamatron::cpu
