// RMSNorm launchers: plain device pointers, sizes and a stream (bf16 storage, fp32 math).
#pragma once
#include "kernels/types.h"

namespace llamatron::kernels {

// y = x * rsqrt(mean(x^2) + eps) * w per row of c; saves rstd[rows] (fp32).
void rmsnorm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int rows, int c, float eps, cudaStream_t stream);
// dx (= or +=) and dw += (fp32, deterministic). `partial` is scratch of
// rmsnorm_dweight_slices(rows) * c floats.
void rmsnorm_backward(const bf16* dy, const bf16* x, const bf16* w, const float* rstd, bf16* dx, float* dw,
                      float* partial, int rows, int c, bool accumulate_dx, cudaStream_t stream);
int rmsnorm_dweight_slices(int rows);

}  // namespace llamatron::kernels
