// Training data. A corpus is a flat stream of tokens (documents concatenated, EOS between them)
// read from llm.c shards or a Megatron indexed dataset, both memory-mapped and validated when
// opened. A token source turns it into an endless, deterministic stream of samples (windows of
// seq + 1 tokens: inputs and shifted targets) that anyone can read at any position: data-parallel
// ranks read disjoint parts of each global batch, and a resumed run continues at the saved position.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llamatron/config.h"

namespace llamatron {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Samples [first, first + count) of the stream into tokens[count][seq + 1].
  virtual void read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const = 0;
  virtual std::string describe() const = 0;
  // Passes over the data completed before `sample` (0 for generated data).
  virtual int64_t epoch(int64_t /*sample*/) const { return 0; }

  // Reading in order: the next `batch` samples, from position().
  void next_batch(int64_t batch, int64_t seq, int32_t* tokens) {
    read(position_, batch, seq, tokens);
    position_ += batch;
  }
  int64_t position() const { return position_; }
  void seek(int64_t sample) { position_ = sample; }

 private:
  int64_t position_ = 0;
};

// A random order-k Markov chain over the vocabulary: each context (the last k tokens) has
// `branching` successors with random probabilities, drawn from a hash of (chain seed, context),
// so nothing is stored. Sample s starts from a uniform random context drawn from (stream seed, s),
// followed by a burn-in. Its entropy floor (the best achievable loss, FACTS: the chain's
// conditional entropy averaged under the distribution of contexts the windows actually see) is
// computed exactly.
class MarkovSource final : public TokenSource {
 public:
  MarkovSource(int64_t vocab, int64_t order, int64_t branching, uint64_t chain_seed, uint64_t stream_seed);
  void read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const override;
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
};

// Random access to a flat token stream.
class TokenCorpus {
 public:
  virtual ~TokenCorpus() = default;
  virtual int64_t size() const = 0;  // tokens
  virtual int32_t token(int64_t i) const = 0;  // a training id: checked < vocab when opened
  virtual int64_t id(int64_t i) const = 0;     // the stored value, whatever its width (data inspect)
  virtual int64_t documents() const = 0;  // -1 where the format does not record them (llm.c)
  virtual std::string describe() const = 0;
};

// The parsers behind the two readers, on bytes (the fuzz targets' entry points). Every count
// from the file is checked against the file's size without overflow; errors name the file.
struct LlmcHeader {
  int token_bytes = 2;  // 2 (magic 20240520, version 1) or 4 (20240801, version 7)
  int64_t tokens = 0;
};
// `head`: the file's first bytes (at least 1024 of them when the file is that long).
LlmcHeader parse_llmc_header(std::string_view head, uint64_t file_size, const std::string& path);
struct MegatronIndex {
  uint8_t code = 0;  // the dtype code
  int width = 0;     // bytes per token
  int64_t sequences = 0, documents = 0, tokens = 0;  // documents: index entries (one more than documents)
};
// A whole .idx file, for a .bin of bin_bytes: sizes, sequence tiling, and document starts running
// from 0 to the sequence count without decreasing.
MegatronIndex parse_megatron_index(std::string_view idx, uint64_t bin_bytes, const std::string& idx_path, const std::string& bin_path);

// The openers check every token id < vocab (vocab 0: no check, for `data inspect`).
// llm.c token shards (FACTS.md), concatenated in the order given. Each is checked when opened:
// magic, version, size, and every token id < vocab.
std::unique_ptr<TokenCorpus> open_llmc_corpus(const std::vector<std::string>& paths, int64_t vocab);
// A Megatron indexed dataset (FACTS.md): `prefix` names prefix.bin and prefix.idx (a path ending
// in .bin or .idx is taken as its prefix). Checked: magic, version, dtype code, index sizes against
// the .bin, and every token id < vocab.
std::unique_ptr<TokenCorpus> open_megatron_corpus(const std::string& prefix, int64_t vocab);

// Windows of seq + 1 tokens over windows [begin, end) of a corpus (window w starts at token w * seq),
// in a fresh pseudo-random order each epoch (a keyed bijection of the window indices, so any
// position is read without state) or in file order.
struct WindowRange {
  int64_t begin = 0, end = -1;  // -1: to the last whole window
};

class WindowSource final : public TokenSource {
 public:
  // name: how errors refer to the data (the file or prefix).
  WindowSource(std::shared_ptr<const TokenCorpus> corpus, std::string name, int64_t seq, bool shuffle, uint64_t seed,
               WindowRange windows = {});
  void read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const override;
  std::string describe() const override;
  int64_t epoch(int64_t sample) const override { return sample / windows(); }
  int64_t windows() const { return end_ - begin_; }
  // The window a sample reads (tests: coverage and disjointness).
  int64_t window_of(int64_t sample) const;
  static int64_t whole_windows(int64_t tokens, int64_t seq) { return tokens > seq ? (tokens - 1) / seq : 0; }

 private:
  std::shared_ptr<const TokenCorpus> corpus_;
  std::string name_;
  int64_t seq_, begin_, end_;
  bool shuffle_;
  uint64_t seed_;
};

// Several sources mixed with weights, deterministically: sample s goes to the source whose share
// lags its weight the most (Megatron's rule), so after n samples each source has given
// round(weight * n) of them, +-1.
class BlendSource final : public TokenSource {
 public:
  BlendSource(std::vector<std::unique_ptr<TokenSource>> sources, std::vector<double> weights);
  void read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const override;
  std::string describe() const override;
  // (source, its own sample index) of blended sample s.
  std::pair<int, int64_t> locate(int64_t s) const;

 private:
  std::vector<std::unique_ptr<TokenSource>> sources_;
  std::vector<double> weights_;  // normalised
  // Walking the assignment from 0 is O(s); reads go forward, so the walk resumes where it was.
  mutable std::mutex mu_;
  mutable int64_t cursor_ = 0;
  mutable std::vector<int64_t> counts_;
};

// The training source of a config (data.source, paths, weights, held-out split), and the
// validation source: data.valid_paths, else the held-out windows (data.valid_fraction), else none.
std::unique_ptr<TokenSource> make_token_source(const RunConfig& cfg);
std::unique_ptr<TokenSource> make_valid_source(const RunConfig& cfg);

// Writers (the preparation tools and tests). An llm.c shard: version 1 (uint16) if every id fits,
// else version 7 (uint32). A Megatron dataset: one sequence per document, uint16 or int32.
void write_llmc_shard(const std::string& path, const std::vector<int32_t>& tokens);
void write_megatron(const std::string& prefix, const std::vector<std::vector<int32_t>>& documents);
// Expands globs (sorted); a pattern matching nothing is an error.
std::vector<std::string> expand_paths(const std::vector<std::string>& patterns);

}  // namespace llamatron
