#include <cmath>

#include "ops/cpu/cpu_ops.h"

namespace llamatron::cpu {

void rope_table(float* cos, float* sin, int64_t max_pos, int64_t d, double theta) {
  const int64_t half = d / 2;
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = p * std::pow(theta, -2.0 * i / d);
      cos[p * half + i] = static_cast<float>(std::cos(angle));
      sin[p * half + i] = static_cast<float>(std::sin(angle));
    }
}

namespace {
// Rotate-half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin); sign = -1 rotates backwards,
// which is the exact backward of the forward rotation (the Jacobian is orthogonal).
template <typename T>
void rotate(T* x, const float* cos, const float* sin, int64_t b, int64_t t, int64_t h, int64_t d,
            int64_t offset, const int32_t* positions, float sign) {
  const int64_t half = d / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti) {
      const int64_t pos = positions ? positions[bi * t + ti] : offset + ti;
      const float* c = cos + pos * half;
      const float* s = sin + pos * half;
      for (int64_t hi = 0; hi < h; ++hi) {
        T* xv = x + ((bi * t + ti) * h + hi) * d;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = to_f32(xv[i]), x2 = to_f32(xv[i + half]);
          const float si = sign * s[i];
          xv[i] = from_f32<T>(x1 * c[i] - x2 * si);
          xv[i + half] = from_f32<T>(x2 * c[i] + x1 * si);
        }
      }
    }
}
}  // namespace

template <typename T>
void rope_fwd(T* x, const float* cos, const float* sin, int64_t b, int64_t t, int64_t h, int64_t d, int64_t offset,
              const int32_t* positions) {
  rotate(x, cos, sin, b, t, h, d, offset, positions, 1.0f);
}
template <typename T>
void rope_bwd(T* dx, const float* cos, const float* sin, int64_t b, int64_t t, int64_t h, int64_t d, int64_t offset,
              const int32_t* positions) {
  rotate(dx, cos, sin, b, t, h, d, offset, positions, -1.0f);
}

template void rope_fwd<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);
template void rope_fwd<bf16>(bf16*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);
template void rope_bwd<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);
template void rope_bwd<bf16>(bf16*, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int32_t*);

}  // namespace llamatron::cpu
