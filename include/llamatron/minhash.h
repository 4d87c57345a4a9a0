// MinHash signatures of word n-gram sets and LSH banding (Broder 1997; Leskovec, Rajaraman & Ullman,
// "Mining of Massive Datasets", ch. 3), as `llamatron data dedup` uses them (docs/data.md).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llamatron {

// Lower-cased (Unicode simple case mapping), white-space runs as one space, no space at either end.
// Exact duplicates are equal normalised texts; shingles are n consecutive words of it.
std::string normalize_text(std::string_view text);

// num_perm hash functions h_k(x) = bits 32..63 of (a_k x + b_k) mod 2^64 with random 64-bit a_k, b_k
// (multiply-add-shift, strongly universal for 32-bit keys: Dietzfelbinger 1996) over x = the low 32
// bits of XXH3-64 of each shingle's bytes (datasketch also hashes shingles to 32 bits); the signature
// keeps each h_k's minimum. A text of fewer than n words is one shingle; an empty text has none (no signature).
class MinHasher {
 public:
  MinHasher(int num_perm, int ngram, uint64_t seed);
  int num_perm() const { return static_cast<int>(alo_.size()); }
  // Fills sig[0..num_perm); false when the text has no shingle.
  bool signature(std::string_view normalized, uint32_t* sig) const;

 private:
  int ngram_;
  std::vector<uint32_t> alo_, ahi_, blo_, bhi_;  // a_k and b_k in 32-bit halves
};

// The share of equal entries: the estimate of the two sets' Jaccard similarity.
double estimated_jaccard(const uint32_t* a, const uint32_t* b, int num_perm);

// b bands of r rows: two sets of Jaccard s share a band with probability 1 - (1 - s^r)^b.
struct LshBands {
  int bands = 0, rows = 0;
};
// The (b, r) with b r <= num_perm that minimises the weighted areas of false positives (the
// probability integrated over s in [0, t)) and false negatives (over (t, 1]), as datasketch's
// MinHashLSH chooses them (here by Simpson's rule).
LshBands optimal_bands(double threshold, int num_perm, double false_positive_weight = 0.5, double false_negative_weight = 0.5);
// The bucket of band `band`: a hash of its rows, seeded by the band (equal rows in different bands
// are different buckets).
uint64_t band_key(const uint32_t* sig, int band, int rows);

}  // namespace llamatron
