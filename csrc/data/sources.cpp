// The sources a config asks for: datasets from data.paths (one, or a weighted blend), windows over
// each, held-out windows for validation, or the synthetic Markov chain.
#include <algorithm>

#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/random.h"

namespace llamatron {
namespace {

struct Dataset {
  std::shared_ptr<const TokenCorpus> corpus;
  std::string name;
};

// paths entries -> datasets. llm.c: every shard as one dataset, or (a blend) one per entry, each a
// glob. Megatron: one per entry, each a prefix.
std::vector<Dataset> open_datasets(const RunConfig& c, const std::vector<std::string>& entries, bool one_per_entry) {
  std::vector<Dataset> out;
  if (c.data.source == "megatron") {
    for (const std::string& e : entries) out.push_back({open_megatron_corpus(e, c.model.vocab_size), e});
  } else if (one_per_entry) {
    for (const std::string& e : entries) out.push_back({open_llmc_corpus(expand_paths({e}), c.model.vocab_size), e});
  } else {
    out.push_back({open_llmc_corpus(expand_paths(entries), c.model.vocab_size), entries.size() == 1 ? entries[0] : "data.paths"});
  }
  return out;
}

// Train or validation windows of every dataset, blended by weight (by size when no weights).
std::unique_ptr<TokenSource> windows_of(const RunConfig& c, const std::vector<Dataset>& sets, bool held_out_part) {
  const int64_t T = c.train.seq_length;
  std::vector<std::unique_ptr<TokenSource>> parts;
  std::vector<double> weights;
  for (size_t d = 0; d < sets.size(); ++d) {
    const int64_t whole = WindowSource::whole_windows(sets[d].corpus->size(), T);
    WindowRange range;
    if (c.data.valid_fraction > 0) {
      const int64_t held = std::max<int64_t>(1, static_cast<int64_t>(c.data.valid_fraction * static_cast<double>(whole)));
      if (whole - held < 1)
        throw Error(sets[d].name + ": " + std::to_string(whole) + " window(s) of train.seq_length + 1 tokens cannot spare " +
                    std::to_string(held) + " for validation (data.valid_fraction): use more data or a smaller fraction");
      range = held_out_part ? WindowRange{whole - held, whole} : WindowRange{0, whole - held};
    }
    parts.push_back(std::make_unique<WindowSource>(sets[d].corpus, sets[d].name, T, c.data.shuffle,
                                                   mix_seed(c.train.seed, 3 + d + (held_out_part ? 1000 : 0)), range));
    weights.push_back(c.data.weights.empty() ? static_cast<double>(sets[d].corpus->size()) : c.data.weights[d]);
  }
  if (parts.size() == 1) return std::move(parts.front());
  return std::make_unique<BlendSource>(std::move(parts), std::move(weights));
}

}  // namespace

std::unique_ptr<TokenSource> make_token_source(const RunConfig& c) {
  if (c.data.source == "synthetic")
    return std::make_unique<MarkovSource>(c.model.vocab_size, c.data.markov_order, c.data.markov_branching, c.data.markov_seed,
                                          mix_seed(c.train.seed, 2));
  return windows_of(c, open_datasets(c, c.data.paths, !c.data.weights.empty()), false);
}

std::unique_ptr<TokenSource> make_valid_source(const RunConfig& c) {
  if (c.data.source == "synthetic")  // fresh samples of the same chain
    return std::make_unique<MarkovSource>(c.model.vocab_size, c.data.markov_order, c.data.markov_branching, c.data.markov_seed,
                                          mix_seed(c.train.seed, 999));
  if (!c.data.valid_paths.empty()) {
    RunConfig v = c;
    v.data.weights.clear(), v.data.valid_fraction = 0;
    return windows_of(v, open_datasets(v, c.data.valid_paths, false), false);
  }
  if (c.data.valid_fraction > 0) return windows_of(c, open_datasets(c, c.data.paths, !c.data.weights.empty()), true);
  return nullptr;
}

}  // namespace llamatron
