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

template <typename T>
void cross_entropy_shard_stats(const T* logits, const int32_t* targets, int64_t n, int64_t v, int64_t valid,
                               int64_t vocab_start, int32_t ignore_index, float* row_max, float* row_sumexp,
                               float* target_logit) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const T* x = logits + r * v;
    float m = -std::numeric_limits<float>::infinity(), s = 0.f;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < valid; ++j) m = to_f32(x[j]) > m ? to_f32(x[j]) : m;
    if (valid > 0) {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < valid; ++j) s += fast_exp(to_f32(x[j]) - m);
    }
    const int64_t local = static_cast<int64_t>(targets[r]) - vocab_start;
    row_max[r] = m, row_sumexp[r] = s;
    target_logit[r] = targets[r] != ignore_index && local >= 0 && local < valid ? to_f32(x[local]) : 0.f;
  }
}

template <typename T>
void cross_entropy_shard_grad(const T* logits, const int32_t* targets, const float* logz, T* dlogits, int64_t n,
                              int64_t v, int64_t valid, int64_t vocab_start, int32_t ignore_index, float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const T* x = logits + r * v;
    T* dx = dlogits + r * v;
    const bool ignored = targets[r] == ignore_index;
    const int64_t local = static_cast<int64_t>(targets[r]) - vocab_start;
    const float z = logz[r], target_x = !ignored && local >= 0 && local < valid ? to_f32(x[local]) : 0.f;
    if (ignored) {
      for (int64_t j = 0; j < v; ++j) dx[j] = from_f32<T>(0.f);
      continue;
    }
#pragma omp simd
    for (int64_t j = 0; j < valid; ++j) dx[j] = from_f32<T>(scale * fast_exp(to_f32(x[j]) - z));
    for (int64_t j = valid; j < v; ++j) dx[j] = from_f32<T>(0.f);
    if (local >= 0 && local < valid) dx[local] = from_f32<T>(scale * (std::exp(target_x - z) - 1.f));
  }
}

template void cross_entropy_shard_stats<float>(const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t, int32_t,
                                               float*, float*, float*);
template void cross_entropy_shard_stats<bf16>(const bf16*, const int32_t*, int64_t, int64_t, int64_t, int64_t, int32_t,
                                              float*, float*, float*);
template void cross_entropy_shard_grad<float>(const float*, const int32_t*, const float*, float*, int64_t, int64_t, int64_t,
                                              int64_t, int32_t, float);
template void cross_entropy_shard_grad<bf16>(const bf16*, const int32_t*, const float*, bf16*, int64_t, int64_t, int64_t,
                                             int64_t, int32_t, float);
template double cross_entropy_fwd_bwd<float>(const float*, const int32_t*, float*, int64_t, int64_t, int32_t, float);
template double cross_entropy_fwd_bwd<bf16>(const bf16*, const int32_t*, bf16*, int64_t, int64_t, int32_t, float);

}  // namespace llamatron::cpu
