#include <cmath>
#include <vector>

#include <omp.h>

#include "ops/cpu/cpu_ops.h"

namespace llamatron::cpu {

template <typename T>
void rmsnorm_fwd(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t c, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
    float ss = 0.f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < c; ++i) ss += to_f32(xr[i]) * to_f32(xr[i]);
    const float rs = 1.0f / std::sqrt(ss / c + eps);
    rstd[r] = rs;
#pragma omp simd
    for (int64_t i = 0; i < c; ++i) yr[i] = from_f32<T>(to_f32(xr[i]) * rs * to_f32(w[i]));
  }
}

// With xhat = x * rstd:  dx = rstd * (dy*w - xhat * mean(dy*w*xhat)),  dw = sum_rows dy * xhat.
template <typename T>
void rmsnorm_bwd(const T* dy, const T* x, const T* w, const float* rstd, T* dx, float* dw, int64_t rows,
                 int64_t c, bool accumulate_dx) {
  const int nt = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(nt) * c, 0.f);
#pragma omp parallel num_threads(nt)
  {
    float* dwp = partial.data() + static_cast<size_t>(omp_get_thread_num()) * c;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* dyr = dy + r * c;
      const T* xr = x + r * c;
      T* dxr = dx + r * c;
      const float rs = rstd[r];
      float dot = 0.f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < c; ++i) dot += to_f32(dyr[i]) * to_f32(w[i]) * to_f32(xr[i]);
      const float k = dot * rs * rs / c;  // mean(dy*w*xhat) * rstd
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        const float xi = to_f32(xr[i]);
        const float g = rs * (to_f32(dyr[i]) * to_f32(w[i]) - xi * k);
        dxr[i] = from_f32<T>(accumulate_dx ? to_f32(dxr[i]) + g : g);
        dwp[i] += to_f32(dyr[i]) * xi * rs;
      }
    }
  }
  // Fixed-order reduction of the per-thread partials: the same bits on every run.
  for (int t = 0; t < nt; ++t)
    for (int64_t i = 0; i < c; ++i) dw[i] += partial[static_cast<size_t>(t) * c + i];
}

#define LT_INSTANTIATE(T)                                                                          \
  template void rmsnorm_fwd<T>(const T*, const T*, T*, float*, int64_t, int64_t, float);          \
  template void rmsnorm_bwd<T>(const T*, const T*, const T*, const float*, T*, float*, int64_t, int64_t, \
                               bool);
LT_INSTANTIATE(float)
LT_INSTANTIATE(bf16)

}  // namespace llamatron::cpu
