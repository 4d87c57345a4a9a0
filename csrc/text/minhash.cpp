#include "llamatron/minhash.h"

#include <unicode/uchar.h>
#include <xxhash.h>

#include <cmath>
#include <limits>

#include "llamatron/errors.h"
#include "llamatron/random.h"
#include "llamatron/utf8.h"

namespace llamatron {
namespace {

// Simpson's rule with n (even) intervals.
template <typename F>
double integrate(F f, double lo, double hi, int n = 512) {
  const double h = (hi - lo) / n;
  double s = f(lo) + f(hi);
  for (int i = 1; i < n; ++i) s += f(lo + i * h) * (i % 2 ? 4 : 2);
  return s * h / 3;
}

}  // namespace

std::string normalize_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (size_t i = 0; i < text.size();) {
    const char32_t c = utf8_next(text, i);
    if (is_white_space(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ', space = false;
    if (c < 0x80) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    else utf8_append(out, static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))));
  }
  return out;
}

MinHasher::MinHasher(int num_perm, int ngram, uint64_t seed) : ngram_(ngram) {
  if (num_perm < 1 || num_perm > 1024) throw Error("--num-perm must be in [1, 1024]");
  if (ngram < 1) throw Error("--ngram must be positive");
  Rng rng(mix_seed(seed, 0x6d696e68617368));  // "minhash"
  for (int k = 0; k < num_perm; ++k) a_.push_back(rng.next() | 1), b_.push_back(rng.next());
}

bool MinHasher::signature(std::string_view s, uint32_t* sig) const {
  const int n = num_perm();
  for (int k = 0; k < n; ++k) sig[k] = std::numeric_limits<uint32_t>::max();
  if (s.empty()) return false;
  // Word starts: a shingle runs from the start of word i to the end of word i + n - 1 (one space between words).
  std::vector<uint32_t> starts;
  starts.push_back(0);
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == ' ') starts.push_back(static_cast<uint32_t>(i + 1));
  const size_t words = starts.size();
  starts.push_back(static_cast<uint32_t>(s.size() + 1));  // where word `words` would start
  const size_t shingles = words >= static_cast<size_t>(ngram_) ? words - ngram_ + 1 : 1;
  const uint64_t* a = a_.data();
  const uint64_t* b = b_.data();
  for (size_t i = 0; i < shingles; ++i) {
    const size_t end_word = std::min(words, i + ngram_);
    const uint64_t x = XXH3_64bits(s.data() + starts[i], starts[end_word] - 1 - starts[i]);
    for (int k = 0; k < n; ++k) sig[k] = std::min(sig[k], static_cast<uint32_t>((a[k] * x + b[k]) >> 32));
  }
  return true;
}

double estimated_jaccard(const uint32_t* a, const uint32_t* b, int num_perm) {
  int equal = 0;
  for (int k = 0; k < num_perm; ++k) equal += a[k] == b[k];
  return static_cast<double>(equal) / num_perm;
}

LshBands optimal_bands(double t, int num_perm, double fp_weight, double fn_weight) {
  if (!(t > 0 && t < 1)) throw Error("--threshold must be in (0, 1)");
  LshBands best;
  double best_error = std::numeric_limits<double>::infinity();
  for (int b = 1; b <= num_perm; ++b)
    for (int r = 1; r <= num_perm / b; ++r) {
      const auto collide = [&](double s) { return 1 - std::pow(1 - std::pow(s, r), b); };
      const double fp = integrate(collide, 0, t);
      const double fn = integrate([&](double s) { return 1 - collide(s); }, t, 1);
      const double error = fp * fp_weight + fn * fn_weight;
      if (error < best_error) best_error = error, best = {b, r};
    }
  return best;
}

uint64_t band_key(const uint32_t* sig, int band, int rows) {
  return XXH3_64bits_withSeed(sig + static_cast<size_t>(band) * rows, sizeof(uint32_t) * rows, static_cast<uint64_t>(band));
}

}  // namespace llamatron
