#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/vec_math.h"

namespace llamatron::cpu {

// Per row, fp32: max, sum of exp (shifted by the max), then dlogits = scale * (softmax - onehot).
// Three vectorized passes over one row, which stays in cache; nothing of vocab size is stored.
// (The GPU kernel fuses the first two with the online-softmax recurrence; the result is the same.)
template <typename T>
double cross_entropy_fwd_bwd(const T* logits, const int32_t* targets, T* dlogits, int64_t n, int64_t v,
                             int32_t ignore_index, float scale) {
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t r = 0; r < n; ++r) {
    const T* x = logits + r * v;
    T* dx = dlogits + r * v;
    const int32_t target = targets[r];
    if (target == ignore_index) {
      for (int64_t j = 0; j < v; ++j) dx[j] = from_f32<T>(0.f);
      continue;
    }
    float m = -std::numeric_limits<float>::infinity(), s = 0.f;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < v; ++j) m = to_f32(x[j]) > m ? to_f32(x[j]) : m;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < v; ++j) s += fast_exp(to_f32(x[j]) - m);
    const float logz = m + std::log(s);
    const float target_logit = to_f32(x[target]);
    total += static_cast<double>(logz - target_logit);
#pragma omp simd
    for (int64_t j = 0; j < v; ++j) dx[j] = from_f32<T>(scale * fast_exp(to_f32(x[j]) - logz));
    dx[target] = from_f32<T>(scale * (std::exp(target_logit - logz) - 1.f));
  }
  return total;
}

template double cross_entropy_fwd_bwd<float>(const float*, const int32_t*, float*, int64_t, int64_t, int32_t, float);
template double cross_entropy_fwd_bwd<bf16>(const bf16*, const int32_t*, bf16*, int64_t, int64_t, int32_t, float);

}  // namespace llamatron::cpu
