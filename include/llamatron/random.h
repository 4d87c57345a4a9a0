// A small counter-free PRNG (SplitMix64) with the same stream on every platform and compiler,
// unlike std::normal_distribution: same seed, same weights and data everywhere.
#pragma once
#include <cmath>
#include <cstdint>

namespace llamatron {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }  // [0, 1)
  uint64_t below(uint64_t n) { return next() % n; }       // bias < n / 2^64: irrelevant here
  double normal() {  // Box-Muller, one value per call
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

// A stream for a named purpose, independent of every other (seed, purpose) pair.
inline uint64_t mix_seed(uint64_t seed, uint64_t purpose) { return Rng(seed ^ (purpose * 0xD1B54A32D192ED03ull)).next(); }

}  // namespace llamatron
