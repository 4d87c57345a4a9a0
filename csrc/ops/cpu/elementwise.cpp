#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

#include "ops/cpu/cpu_ops.h"

namespace llamatron::cpu {

template <typename T>
void add_inplace(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = from_f32<T>(to_f32(y[i]) + to_f32(x[i]));
}

template <typename T>
void accumulate(float* dst, const T* src, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] += to_f32(src[i]);
}

void transpose_blocks(const void* src, void* dst, int64_t a, int64_t b, int64_t block_bytes) {
  const auto* from = static_cast<const char*>(src);
  auto* to = static_cast<char*>(dst);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < a * b; ++i) {  // dst block i = (ib, ia) is src block (ia, ib)
    const int64_t ib = i / a, ia = i % a;
    std::memcpy(to + i * block_bytes, from + (ia * b + ib) * block_bytes, static_cast<size_t>(block_bytes));
  }
}

// Static chunks per thread and a fixed-order final sum: bit-identical for a fixed thread count.
double sum_squares(const float* x, int64_t n) {
  const int nt = omp_get_max_threads();
  std::vector<double> partial(nt, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), chunk = (n + nt - 1) / nt;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = begin; i < end; ++i) acc += static_cast<double>(x[i]) * x[i];
    partial[t] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void scale_inplace(float* x, int64_t n, float s) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

template <typename T>
void convert(const float* src, T* dst, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = from_f32<T>(src[i]);
}

template void add_inplace<float>(float*, const float*, int64_t);
template void add_inplace<bf16>(bf16*, const bf16*, int64_t);
template void accumulate<float>(float*, const float*, int64_t);
template void accumulate<bf16>(float*, const bf16*, int64_t);
template void convert<float>(const float*, float*, int64_t);
template void convert<bf16>(const float*, bf16*, int64_t);

}  // namespace llamatron::cpu
