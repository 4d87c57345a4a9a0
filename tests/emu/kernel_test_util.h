// Shared helpers of the emulated kernel tests: random bf16 data, the scaled error measure, and
// views of llamatron::bf16 buffers as the kernels' __nv_bfloat16 (same bits).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
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

// A kernel's output or workspace buffer as a GPU hands it out: garbage. Every byte is the
// emulator's poison (NaN in bf16 and fp32), so an element the kernel forgets to write, or reads
// before writing, shows up as NaN instead of a lucky zero.
template <typename T>
std::vector<T> poisoned(size_t n) {
  std::vector<T> v(n);
  std::memset(static_cast<void*>(v.data()), 0xFF, n * sizeof(T));
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

template <typename A>
double max_abs_diff(const std::vector<A>& a, const std::vector<float>& ref) {
  double m = 0;
  for (size_t i = 0; i < ref.size(); ++i) m = std::max(m, std::abs(static_cast<double>(static_cast<float>(a[i])) - ref[i]));
  return m;
}

template <typename T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, static_cast<double>(std::abs(static_cast<float>(x))));
  return m;
}

// The tolerance of attention, as FlashAttention's own tests derive it: on the same bf16 inputs, the
// kernel's error against the CPU attention computed in fp32 (no bf16 rounding of P, dS or outputs)
// may be at most twice the error of the CPU's bf16 attention, which rounds the same quantities,
// plus one bf16 rounding (2^-9) of the tensor's scale. dQ and dK come from dS = P (dP - D), which
// cancels exactly where one key is visible (t = 1): there the fp32 sums leave a few ulps (16 eps)
// of one product term (`cancelling_term`: |dO| |V| |K or Q|) on both sides.
template <typename K, typename C>
void expect_no_worse_than_cpu_bf16(const char* what, const std::vector<K>& kernel, const std::vector<C>& cpu_bf16,
                                   const std::vector<float>& ref, double cancelling_term = 0) {
  const double kernel_err = max_abs_diff(kernel, ref), cpu_err = max_abs_diff(cpu_bf16, ref);
  const double bound = 2 * cpu_err + std::ldexp(max_abs(ref), -9) + 16 * FLT_EPSILON * cancelling_term;
  EXPECT_LE(kernel_err, bound) << what << ": kernel error " << kernel_err << ", CPU bf16 error " << cpu_err;
}

}  // namespace llamatron::test
