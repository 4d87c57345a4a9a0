#include <cmath>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vec_math.h"

namespace llamatron::cpu {

namespace {
inline float sigmoid(float z) { return 1.0f / (1.0f + fast_exp(-z)); }
}  // namespace

template <typename T>
void swiglu_fwd(const T* gate_up, T* y, int64_t rows, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = gate_up + r * 2 * f;
    const T* up = gate + f;
    T* yr = y + r * f;
#pragma omp simd
    for (int64_t i = 0; i < f; ++i) {
      const float g = to_f32(gate[i]);
      yr[i] = from_f32<T>(g * sigmoid(g) * to_f32(up[i]));
    }
  }
}

// d silu(g)/dg = s + g s (1 - s), with s = sigmoid(g).
template <typename T>
void swiglu_bwd(const T* dy, const T* gate_up, T* dgate_up, int64_t rows, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = gate_up + r * 2 * f;
    const T* up = gate + f;
    const T* d = dy + r * f;
    T* dgate = dgate_up + r * 2 * f;
    T* dup = dgate + f;
#pragma omp simd
    for (int64_t i = 0; i < f; ++i) {
      const float g = to_f32(gate[i]), u = to_f32(up[i]), di = to_f32(d[i]);
      const float s = sigmoid(g);
      dgate[i] = from_f32<T>(di * u * (s + g * s * (1.0f - s)));
      dup[i] = from_f32<T>(di * g * s);
    }
  }
}

template void swiglu_fwd<float>(const float*, float*, int64_t, int64_t);
template void swiglu_fwd<bf16>(const bf16*, bf16*, int64_t, int64_t);
template void swiglu_bwd<float>(const float*, const float*, float*, int64_t, int64_t);
template void swiglu_bwd<bf16>(const bf16*, const bf16*, bf16*, int64_t, int64_t);

}  // namespace llamatron::cpu
