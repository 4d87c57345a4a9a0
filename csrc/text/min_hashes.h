// The inner loop of MinHash (minhash.cpp): sig[k] = min(sig[k], h_k(x)) over a document's shingle
// hashes x, h_k(x) = bits 32..63 of (a_k x + b_k) mod 2^64, a_k = ahi_k 2^32 + alo_k and b_k likewise.
// Two implementations of the same numbers: portable C++ and AVX2; min_hashes picks one once.
#pragma once
#include <cstddef>
#include <cstdint>

namespace llamatron {

struct MinHashConstants {
  const uint32_t *alo, *ahi, *blo, *bhi;  // num_perm entries each
  int num_perm;
};

void min_hashes_generic(const uint32_t* xs, size_t count, const MinHashConstants& c, uint32_t* sig);
// Only where cpu_has_avx2().
void min_hashes_avx2(const uint32_t* xs, size_t count, const MinHashConstants& c, uint32_t* sig);
bool cpu_has_avx2();

inline void min_hashes(const uint32_t* xs, size_t count, const MinHashConstants& c, uint32_t* sig) {
  static const bool avx2 = cpu_has_avx2();
  avx2 ? min_hashes_avx2(xs, count, c, sig) : min_hashes_generic(xs, count, c, sig);
}

}  // namespace llamatron
