// exp that the compiler vectorizes (libm's expf is a scalar call in every loop it appears in).
// Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then Cephes' degree-6 polynomial:
// about 1 ulp of fp32 (tests/unit/test_vec_math.cpp), far below every tolerance that uses it.
// exp(x) = 0 for x < -87.3 (including -inf, the attention mask); it saturates at exp(88.3).
// Written without floorf or memcpy so that GCC vectorizes it inside `omp simd` loops.
#pragma once
#include <bit>
#include <cstdint>

namespace llamatron::cpu {

inline float fast_exp(float x) {
  const float xc = x > 88.3f ? 88.3f : (x < -87.3f ? -87.3f : x);
  // Adding 1.5 * 2^23 rounds x*log2(e) to the nearest integer n, which lands in the low mantissa bits.
  const float shifted = xc * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t two_n = (std::bit_cast<int32_t>(shifted) - 0x4B400000 + 127) << 23;  // 2^n as float bits
  return x < -87.3f ? 0.0f : p * std::bit_cast<float>(two_n);
}

}  // namespace llamatron::cpu
