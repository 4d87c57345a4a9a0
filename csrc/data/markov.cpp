#include <cmath>
#include <sstream>

#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/random.h"

namespace llamatron {

MarkovSource::MarkovSource(int64_t vocab, int64_t order, int64_t branching, uint64_t chain_seed, uint64_t stream_seed)
    : vocab_(vocab), order_(order), branching_(branching), chain_seed_(chain_seed), stream_seed_(stream_seed) {
  if (std::pow(static_cast<double>(vocab), static_cast<double>(order)) > static_cast<double>(1ull << 22))
    throw Error("synthetic data: vocab_size^markov_order exceeds 4M contexts; lower data.markov_order or model.vocab_size");
}

uint64_t MarkovSource::contexts() const {
  uint64_t n = 1;
  for (int64_t i = 0; i < order_; ++i) n *= vocab_;
  return n;
}

// Successors: `branching` distinct tokens; probabilities proportional to u^2, u ~ U(0.05, 1),
// which gives rows from near-uniform to peaked, so the floor is neither 0 nor log(branching).
MarkovSource::Row MarkovSource::row(uint64_t context) const {
  Rng rng(mix_seed(chain_seed_, context + 1));
  Row r;
  while (static_cast<int64_t>(r.next.size()) < branching_) {
    const int32_t t = static_cast<int32_t>(rng.below(vocab_));
    bool seen = false;
    for (int32_t n : r.next) seen |= n == t;
    if (!seen) r.next.push_back(t);
  }
  double total = 0;
  for (int64_t i = 0; i < branching_; ++i) {
    const double u = 0.05 + 0.95 * rng.uniform();
    r.prob.push_back(u * u);
    total += u * u;
  }
  for (double& p : r.prob) p /= total;
  return r;
}

void MarkovSource::read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const {
  const uint64_t n_ctx = contexts();
  for (int64_t b = 0; b < count; ++b) {
    Rng rng(mix_seed(stream_seed_, static_cast<uint64_t>(first + b) + 1));  // sample s: its own stream
    uint64_t ctx = rng.below(n_ctx);
    for (int64_t t = -kBurnIn; t < seq + 1; ++t) {
      const Row r = row(ctx);
      double u = rng.uniform();
      int64_t i = 0;
      while (i + 1 < branching_ && u >= r.prob[i]) u -= r.prob[i++];
      const int32_t tok = r.next[i];
      ctx = (ctx * vocab_ + tok) % n_ctx;  // shift the new token into the context
      if (t >= 0) tokens[b * (seq + 1) + t] = tok;
    }
  }
}

double MarkovSource::entropy_floor(int64_t seq) const {
  const uint64_t n_ctx = contexts();
  std::vector<Row> rows;
  std::vector<double> h(n_ctx);
  rows.reserve(n_ctx);
  for (uint64_t c = 0; c < n_ctx; ++c) {
    rows.push_back(row(c));
    for (double p : rows.back().prob) h[c] -= p * std::log(p);
  }
  // Context distribution, step by step from the uniform start, exactly as read samples.
  std::vector<double> pi(n_ctx, 1.0 / n_ctx), nxt(n_ctx);
  auto advance = [&] {
    std::fill(nxt.begin(), nxt.end(), 0.0);
    for (uint64_t c = 0; c < n_ctx; ++c)
      for (int64_t i = 0; i < branching_; ++i) nxt[(c * vocab_ + rows[c].next[i]) % n_ctx] += pi[c] * rows[c].prob[i];
    pi.swap(nxt);
  };
  for (int64_t t = 0; t < kBurnIn + 1; ++t) advance();  // context of target 1 follows window token 0
  double floor = 0;
  for (int64_t j = 0; j < seq; ++j) {
    double hj = 0;
    for (uint64_t c = 0; c < n_ctx; ++c) hj += pi[c] * h[c];
    floor += hj / seq;
    advance();
  }
  return floor;
}

std::string MarkovSource::describe() const {
  std::ostringstream s;
  s << "synthetic order-" << order_ << " Markov chain (vocab " << vocab_ << ", " << branching_
    << " successors per context, chain seed " << chain_seed_ << ")";
  return s.str();
}

}  // namespace llamatron
