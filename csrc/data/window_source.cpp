#include <string>

#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/random.h"

namespace llamatron {
namespace {

// A keyed pseudo-random bijection of [0, n): a 4-round Feistel network on the smallest even-width
// bit range that holds n, cycle-walking until the value falls below n (fewer than 4 walks on
// average). Random access, no table: any position of any epoch is computed directly.
int64_t permute(int64_t i, int64_t n, uint64_t key) {
  int half = 1;
  while ((int64_t{1} << (2 * half)) < n) ++half;
  const uint64_t mask = (uint64_t{1} << half) - 1;
  uint64_t x = static_cast<uint64_t>(i);
  do {
    uint64_t l = x >> half, r = x & mask;
    for (uint64_t round = 0; round < 4; ++round) {
      const uint64_t f = mix_seed(key, (round << 56) ^ r) & mask;
      const uint64_t next_r = l ^ f;
      l = r, r = next_r;
    }
    x = (l << half) | r;
  } while (x >= static_cast<uint64_t>(n));
  return static_cast<int64_t>(x);
}

}  // namespace

WindowSource::WindowSource(std::shared_ptr<const TokenCorpus> corpus, std::string name, int64_t seq, bool shuffle, uint64_t seed,
                           WindowRange windows)
    : corpus_(std::move(corpus)), name_(std::move(name)), seq_(seq), shuffle_(shuffle), seed_(seed) {
  const int64_t whole = whole_windows(corpus_->size(), seq);
  if (corpus_->size() == 0) throw Error(name_ + ": the dataset is empty (0 tokens)");
  if (whole == 0)
    throw Error(name_ + ": " + std::to_string(corpus_->size()) + " tokens, fewer than train.seq_length + 1 = " + std::to_string(seq + 1) +
                ": use a shorter train.seq_length or more data");
  begin_ = windows.begin;
  end_ = windows.end < 0 ? whole : windows.end;
  LT_CHECK(0 <= begin_ && begin_ < end_ && end_ <= whole, "window range of " + name_);
}

int64_t WindowSource::window_of(int64_t sample) const {
  const int64_t n = windows(), epoch = sample / n, i = sample % n;
  return begin_ + (shuffle_ ? permute(i, n, mix_seed(seed_, static_cast<uint64_t>(epoch))) : i);
}

void WindowSource::read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const {
  LT_CHECK(seq == seq_, "a window source reads the seq_len it was made for");
  for (int64_t b = 0; b < count; ++b) {
    const int64_t start = window_of(first + b) * seq;
    for (int64_t t = 0; t <= seq; ++t) tokens[b * (seq + 1) + t] = corpus_->token(start + t);
  }
}

std::string WindowSource::describe() const {
  return corpus_->describe() + "; " + std::to_string(windows()) + " windows of " + std::to_string(seq_ + 1) + " tokens" +
         (shuffle_ ? ", shuffled each epoch" : ", in order");
}

}  // namespace llamatron
