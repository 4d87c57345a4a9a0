// Optimizer launchers over flat buffers (see kernels/optimizer.cu).
#pragma once
#include "kernels/types.h"

namespace llamatron::kernels {

// *out = sum of x[i]^2 (fp32), deterministic: fixed partial count and order. scratch holds
// sum_squares_scratch_floats() floats.
template <typename G>
void sum_squares(const G* x, int64_t n, float* scratch, float* out, cudaStream_t stream);
int sum_squares_scratch_floats();

// torch.optim.AdamW on n elements. Weight decay per range: element i uses range_wd[r] for the
// first r with i < range_end[r] (sorted; e.g. 0 for norm weights). The host computes the scalars
// (adamw_args) exactly as the CPU optimizer does.
struct AdamWArgs {
  float lr, beta1, beta2, eps;
  float step_size;   // lr / (1 - beta1^t)
  float bc2_sqrt;    // sqrt(1 - beta2^t)
  float grad_scale;  // global-norm clip factor
  bool stochastic_rounding;
  uint32_t seed;     // stochastic rounding: same seed, same bits
};
// The scalars of step `step` (1-based), computed as the CPU optimizer computes them.
AdamWArgs make_adamw_args(float lr, float beta1, float beta2, float eps, int64_t step, float grad_scale,
                          bool stochastic_rounding = false, uint32_t seed = 0);
template <typename G>
void adamw_step(float* master, const G* grad, float* m, float* v, bf16* param, int64_t n, const int64_t* range_end,
                const float* range_wd, int ranges, const AdamWArgs& args, cudaStream_t stream);

}  // namespace llamatron::kernels
