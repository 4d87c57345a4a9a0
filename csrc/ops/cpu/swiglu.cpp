#include <cmath>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vec_math.h"

namespace llamatron::cpu {

namespace {
inline float sigmoid(float z) { return 1.0f / (1.0f + fast_exp(-z)); }
}  // namespace

template <typename T>
void swiglu_fwd(const T* gate, const T* up, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = to_f32(gate[i]);
    y[i] = from_f32<T>(g * sigmoid(g) * to_f32(up[i]));
  }
}

// d silu(g)/dg = s + g s (1 - s), with s = sigmoid(g).
template <typename T>
void swiglu_bwd(const T* dy, const T* gate, const T* up, T* dgate, T* dup, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = to_f32(gate[i]), u = to_f32(up[i]), d = to_f32(dy[i]);
    const float s = sigmoid(g);
    dgate[i] = from_f32<T>(d * u * (s + g * s * (1.0f - s)));
    dup[i] = from_f32<T>(d * g * s);
  }
}

template void swiglu_fwd<float>(const float*, const float*, float*, int64_t);
template void swiglu_fwd<bf16>(const bf16*, const bf16*, bf16*, int64_t);
template void swiglu_bwd<float>(const float*, const float*, const float*, float*, float*, int64_t);
template void swiglu_bwd<bf16>(const bf16*, const bf16*, const bf16*, bf16*, bf16*, int64_t);

}  // namespace llamatron::cpu
