#include "llamatron/minhash.h"

#include <unicode/uchar.h>
// XXH3 inlined from libxxhash-dev's header: a call into the shared library per 5-word shingle cost
// more than the hash.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "llamatron/errors.h"
#include "llamatron/random.h"
#include "llamatron/utf8.h"
#include "text/min_hashes.h"

namespace llamatron {

std::string normalize_text(std::string_view text) {
  // Through a pointer and without a branch per ASCII byte (most of any text; this loop was a fifth of
  // dedup's time): the byte goes out lower-cased, white space as ' ', and the pointer advances unless
  // it is white space at the start or after white space. ASCII writes at most the bytes it reads; a
  // longer character (a lower case of more bytes, U+FFFD for one invalid byte) makes room first.
  static constexpr std::array<char, 128> ascii = [] {
    std::array<char, 128> t{};
    for (int c = 0; c < 128; ++c) t[c] = static_cast<char>(is_white_space(static_cast<char32_t>(c)) ? ' ' : c >= 'A' && c <= 'Z' ? c + 32 : c);
    return t;
  }();
  std::string out(text.size() + 8, '\0');
  char* o = out.data();
  bool after_space = true;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      const char c = ascii[byte];
      const bool space = c == ' ';
      *o = c;
      o += !(space && after_space);
      after_space = space;
      ++i;
      continue;
    }
    size_t next = i;  // i's address is not taken: it stays in a register for the ASCII loop
    const char32_t c = utf8_next(text, next);
    i = next;
    const auto at = static_cast<size_t>(o - out.data());
    if (out.size() - at < text.size() - i + 8) out.resize(out.size() + text.size() / 2 + 8), o = out.data() + at;
    if (is_white_space(c)) {
      *o = ' ';
      o += !after_space;
      after_space = true;
      continue;
    }
    o = utf8_put(o, static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))));
    after_space = false;
  }
  if (o != out.data() && o[-1] == ' ') --o;  // white space at the end
  out.resize(static_cast<size_t>(o - out.data()));
  return out;
}

MinHasher::MinHasher(int num_perm, int ngram, uint64_t seed) : ngram_(ngram) {
  if (num_perm < 1 || num_perm > 1024) throw Error("--num-perm must be in [1, 1024]");
  if (ngram < 1) throw Error("--ngram must be positive");
  Rng rng(mix_seed(seed, 0x6d696e68617368));  // "minhash"
  for (int k = 0; k < num_perm; ++k) {
    const uint64_t a = rng.next(), b = rng.next();
    alo_.push_back(static_cast<uint32_t>(a)), ahi_.push_back(static_cast<uint32_t>(a >> 32));
    blo_.push_back(static_cast<uint32_t>(b)), bhi_.push_back(static_cast<uint32_t>(b >> 32));
  }
}

bool MinHasher::signature(std::string_view s, uint32_t* sig) const {
  const int n = num_perm();
  for (int k = 0; k < n; ++k) sig[k] = std::numeric_limits<uint32_t>::max();
  if (s.empty()) return false;
  // Word starts: a shingle runs from the start of word i to the end of word i + n - 1 (one space
  // between words). Recorded without a branch per byte: every byte is written, a space advances.
  thread_local std::vector<uint32_t> starts;
  starts.resize(s.size() + 2);
  starts[0] = 0;
  size_t words = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    starts[words] = static_cast<uint32_t>(i + 1);
    words += s[i] == ' ';
  }
  starts[words] = static_cast<uint32_t>(s.size() + 1);  // where word `words` would start
  const size_t shingles = words >= static_cast<size_t>(ngram_) ? words - ngram_ + 1 : 1;
  thread_local std::vector<uint32_t> xs;
  xs.resize(shingles);
  for (size_t i = 0; i < shingles; ++i) {
    const size_t end_word = std::min(words, i + ngram_);
    xs[i] = static_cast<uint32_t>(XXH3_64bits(s.data() + starts[i], starts[end_word] - 1 - starts[i]));
  }
  min_hashes(xs.data(), shingles, {alo_.data(), ahi_.data(), blo_.data(), bhi_.data(), n}, sig);
  return true;
}

double estimated_jaccard(const uint32_t* a, const uint32_t* b, int num_perm) {
  int equal = 0;
  for (int k = 0; k < num_perm; ++k) equal += a[k] == b[k];
  return static_cast<double>(equal) / num_perm;
}

LshBands optimal_bands(double t, int num_perm, double fp_weight, double fn_weight) {
  if (!(t > 0 && t < 1)) throw Error("--threshold must be in (0, 1)");
  // Simpson's rule on a fixed grid of s, where (1 - s^r)^b grows by one factor per b: no pow in the loop.
  constexpr int kIntervals = 512;
  const auto simpson_weight = [](int i) { return i == 0 || i == kIntervals ? 1.0 : i % 2 ? 4.0 : 2.0; };
  std::vector<double> sr(2 * (kIntervals + 1)), miss(sr.size());  // s^r and (1 - s^r)^b on [0, t] then [t, 1]
  std::vector<std::vector<double>> error(num_perm + 1, std::vector<double>(num_perm + 1));  // [b][r]
  for (int r = 1; r <= num_perm; ++r) {
    for (int i = 0; i <= kIntervals; ++i) {
      sr[i] = std::pow(t * i / kIntervals, r);
      sr[kIntervals + 1 + i] = std::pow(t + (1 - t) * i / kIntervals, r);
    }
    std::fill(miss.begin(), miss.end(), 1.0);
    for (int b = 1; b <= num_perm / r; ++b) {
      double fp = 0, fn = 0;  // the collision probability 1 - miss below t, miss above it
      for (int i = 0; i <= kIntervals; ++i) {
        miss[i] *= 1 - sr[i], miss[kIntervals + 1 + i] *= 1 - sr[kIntervals + 1 + i];
        fp += simpson_weight(i) * (1 - miss[i]), fn += simpson_weight(i) * miss[kIntervals + 1 + i];
      }
      error[b][r] = fp * (t / kIntervals / 3) * fp_weight + fn * ((1 - t) / kIntervals / 3) * fn_weight;
    }
  }
  LshBands best;  // the first minimum in datasketch's order, b outer, r inner
  for (int b = 1; b <= num_perm; ++b)
    for (int r = 1; r <= num_perm / b; ++r)
      if (best.bands == 0 || error[b][r] < error[best.bands][best.rows]) best = {b, r};
  return best;
}

uint64_t band_key(const uint32_t* sig, int band, int rows) {
  return XXH3_64bits_withSeed(sig + static_cast<size_t>(band) * rows, sizeof(uint32_t) * rows, static_cast<uint64_t>(band));
}

}  // namespace llamatron
