// Shared helpers of the emulated kernel tests: random bf16 data, the scaled error measure, and
// views of llamatron::bf16 buffers as the kernels' __nv_bfloat16 (same bits).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/types.h"
#include "llamatron/dtype.h"
#include "llamatron/random.h"

namespace llamatron::test {

inline std::vector<bf16> random_bf16(size_t n, uint64_t seed, float scale, float shift = 0.f) {
  Rng rng(seed);
  std::vector<bf16> v(n);
  for (auto& x : v) x = bf16(shift + scale * static_cast<float>(rng.normal()));
  return v;
}

inline std::vector<float> random_f32(size_t n, uint64_t seed, float scale, float shift = 0.f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = shift + scale * static_cast<float>(rng.normal());
  return v;
}

// max |a - b| / max |b|.
template <typename A, typename B>
double scaled_error(const std::vector<A>& a, const std::vector<B>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(static_cast<float>(a[i])) - static_cast<float>(b[i])));
    den = std::max(den, std::abs(static_cast<double>(static_cast<float>(b[i]))));
  }
  return den > 0 ? num / den : num;
}

inline const kernels::bf16* dev(const std::vector<bf16>& v) { return reinterpret_cast<const kernels::bf16*>(v.data()); }
inline kernels::bf16* dev(std::vector<bf16>& v) { return reinterpret_cast<kernels::bf16*>(v.data()); }

constexpr double kOneBf16Rounding = 1.0 / 256;  // both sides round the same fp32 math once

}  // namespace llamatron::test
