#include "text/min_hashes.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace llamatron {
namespace {

// h_k(x) in 32-bit lanes: (ahi x + bhi + the carry-out of alo x + blo) mod 2^32.
inline uint32_t hash_k(const MinHashConstants& c, int k, uint32_t x) {
  const uint64_t low = static_cast<uint64_t>(c.alo[k]) * x + c.blo[k];
  return static_cast<uint32_t>(low >> 32) + c.ahi[k] * x + c.bhi[k];
}

}  // namespace

void min_hashes_generic(const uint32_t* xs, size_t count, const MinHashConstants& c, uint32_t* sig) {
  for (size_t i = 0; i < count; ++i)
    for (int k = 0; k < c.num_perm; ++k) sig[k] = std::min(sig[k], hash_k(c, k, xs[i]));
}

#if defined(__x86_64__)
bool cpu_has_avx2() { return __builtin_cpu_supports("avx2"); }

namespace {

// G registers of 8 minima (k0 .. k0 + 8G) over every x. vpmuludq multiplies the even 32-bit lanes
// into 64-bit products; the odd lanes, shifted down, go through a second one; the two high halves
// blend back into one register. The constants sit in L1 (a block's 6 G vectors), the minima in registers.
template <int G>
__attribute__((target("avx2"))) void block_avx2(const uint32_t* xs, size_t count, const MinHashConstants& c, int k0, uint32_t* sig) {
  __m256i ale[G], alo[G], ble[G], blo[G], ah[G], bh[G], m[G];
  const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFF);
  for (int g = 0; g < G; ++g) {
    const int k = k0 + 8 * g;
    const __m256i al = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.alo + k));
    const __m256i bl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.blo + k));
    ale[g] = al, alo[g] = _mm256_srli_epi64(al, 32);
    ble[g] = _mm256_and_si256(bl, low32), blo[g] = _mm256_srli_epi64(bl, 32);
    ah[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.ahi + k));
    bh[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.bhi + k));
    m[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sig + k));
  }
  for (size_t i = 0; i < count; ++i) {
    const __m256i x = _mm256_set1_epi32(static_cast<int>(xs[i]));
    for (int g = 0; g < G; ++g) {
      const __m256i even = _mm256_add_epi64(_mm256_mul_epu32(ale[g], x), ble[g]);
      const __m256i odd = _mm256_add_epi64(_mm256_mul_epu32(alo[g], x), blo[g]);
      const __m256i carry = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
      const __m256i h = _mm256_add_epi32(_mm256_add_epi32(carry, _mm256_mullo_epi32(ah[g], x)), bh[g]);
      m[g] = _mm256_min_epu32(m[g], h);
    }
  }
  for (int g = 0; g < G; ++g) _mm256_storeu_si256(reinterpret_cast<__m256i*>(sig + k0 + 8 * g), m[g]);
}

}  // namespace

void min_hashes_avx2(const uint32_t* xs, size_t count, const MinHashConstants& c, uint32_t* sig) {
  constexpr int kGroups = 8;  // 64 k per pass over the shingles
  int k0 = 0;
  for (; k0 + 8 * kGroups <= c.num_perm; k0 += 8 * kGroups) block_avx2<kGroups>(xs, count, c, k0, sig);
  for (; k0 + 8 <= c.num_perm; k0 += 8) block_avx2<1>(xs, count, c, k0, sig);
  for (size_t i = 0; i < count; ++i)  // the last num_perm % 8
    for (int k = k0; k < c.num_perm; ++k) sig[k] = std::min(sig[k], hash_k(c, k, xs[i]));
}
#else
bool cpu_has_avx2() { return false; }
void min_hashes_avx2(const uint32_t* xs, size_t count, const MinHashConstants& c, uint32_t* sig) { min_hashes_generic(xs, count, c, sig); }
#endif

}  // namespace llamatron
