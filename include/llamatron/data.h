// Token sources for training: windows of seq + 1 tokens (inputs and shifted targets).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llamatron/config.h"

namespace llamatron {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Fills tokens[batch][seq + 1].
  virtual void next_batch(int64_t batch, int64_t seq, int32_t* tokens) = 0;
  virtual std::string describe() const = 0;
};

// A random order-k Markov chain over the vocabulary: each context (the last k tokens) has
// `branching` successors with random probabilities, drawn from a hash of (chain seed, context),
// so nothing is stored. Every sequence starts from a uniform random context followed by a burn-in.
// Its entropy floor (the best achievable loss, FACTS: the chain's conditional entropy averaged
// under the distribution of contexts the windows actually see) is computed exactly.
class MarkovSource final : public TokenSource {
 public:
  MarkovSource(int64_t vocab, int64_t order, int64_t branching, uint64_t chain_seed, uint64_t stream_seed);
  void next_batch(int64_t batch, int64_t seq, int32_t* tokens) override;
  std::string describe() const override;
  // Expected loss (nats) of the true chain on the targets of a window of length seq; exact for
  // order 1 (every target's context is inside the window), a lower bound for order > 1.
  double entropy_floor(int64_t seq) const;

  static constexpr int64_t kBurnIn = 64;

 private:
  struct Row {
    std::vector<int32_t> next;
    std::vector<double> prob;
  };
  Row row(uint64_t context) const;
  uint64_t contexts() const;
  int64_t vocab_, order_, branching_;
  uint64_t chain_seed_, stream_seed_;
  uint64_t batches_drawn_ = 0;
};

// llm.c token shards (FACTS.md), memory-mapped and validated when opened: magic, version, size,
// and every token id < vocab. Windows are read in order across the shards, llm.c style (each
// window of seq + 1 tokens starts seq tokens after the previous one), wrapping into a new epoch.
class LlmcShardSource final : public TokenSource {
 public:
  LlmcShardSource(const std::vector<std::string>& paths, int64_t vocab, int64_t seq);
  ~LlmcShardSource() override;
  void next_batch(int64_t batch, int64_t seq, int32_t* tokens) override;
  std::string describe() const override;
  int64_t epoch() const { return epoch_; }

  struct Shard {
    std::string path;
    const void* map = nullptr;
    size_t map_bytes = 0;
    int64_t n_tokens = 0;
    int token_bytes = 2;
    int32_t token(int64_t i) const;
  };

 private:
  std::vector<Shard> shards_;
  size_t shard_ = 0;
  int64_t pos_ = 0, epoch_ = 0;
};

// Opens and validates one shard (throws Error naming the file and the problem).
LlmcShardSource::Shard open_llmc_shard(const std::string& path, int64_t vocab);
// Writes a shard (tools and tests): version 1 (uint16) if every id fits, else version 7 (uint32).
void write_llmc_shard(const std::string& path, const std::vector<int32_t>& tokens);
// Expands globs in data.paths (sorted); a pattern matching nothing is an error.
std::vector<std::string> expand_paths(const std::vector<std::string>& patterns);

std::unique_ptr<TokenSource> make_token_source(const RunConfig& cfg);

}  // namespace llamatron
