#include <algorithm>
#include <cstring>

#include <omp.h>

#include "ops/cpu/cpu_ops.h"

namespace llamatron::cpu {

template <typename T>
void embedding_fwd(const int32_t* ids, const T* table, T* y, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0)
      std::fill_n(y + i * c, c, from_f32<T>(0.f));
    else
      std::memcpy(y + i * c, table + static_cast<int64_t>(ids[i]) * c, c * sizeof(T));
  }
}

// Each thread owns a slice of the columns and walks all tokens in order: repeated ids accumulate
// in the same order on every run, with no atomics.
template <typename T>
void embedding_bwd(const int32_t* ids, const T* dy, float* dtable, int64_t n, int64_t c) {
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), ti = omp_get_thread_num();
    const int64_t chunk = (c + nt - 1) / nt, c0 = std::min(c, ti * chunk), c1 = std::min(c, c0 + chunk);
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] < 0) continue;
      float* row = dtable + static_cast<int64_t>(ids[i]) * c;
      const T* g = dy + i * c;
#pragma omp simd
      for (int64_t j = c0; j < c1; ++j) row[j] += to_f32(g[j]);
    }
  }
}

template void embedding_fwd<float>(const int32_t*, const float*, float*, int64_t, int64_t);
template void embedding_fwd<bf16>(const int32_t*, const bf16*, bf16*, int64_t, int64_t);
template void embedding_bwd<float>(const int32_t*, const float*, float*, int64_t, int64_t);
template void embedding_bwd<bf16>(const int32_t*, const bf16*, float*, int64_t, int64_t);

}  // namespace llamatron::cpu
