// `llamatron data filter`: the heuristic quality rules of Gopher (Rae et al. 2021) and the pipelines
// that followed it (datatrove, NeMo Curator), over code points (docs/data.md has each rule's exact
// definition; tests/tools/filter_ref.py implements the same definitions independently).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llamatron {

struct FilterOptions {
  int64_t min_words = 50, max_words = 100'000;
  double min_mean_word_length = 3, max_mean_word_length = 10;
  double min_alpha_fraction = 0.5;        // letters / non-space characters
  double max_symbol_ratio = 0.1;          // ('#' + "..." + '…') / words
  double max_ellipsis_lines = 0.3;        // non-empty lines ending in "..." or '…'
  double max_duplicate_lines = 0.3;       // non-empty lines equal to an earlier one
  double max_top_char_fraction = 0;       // the commonest non-space character's share; 0: off
  bool repair_utf8 = false;               // keep (repaired) documents that were not valid UTF-8
};

// What a document is measured by: every quantity a rule reads.
struct TextStats {
  int64_t words = 0, chars = 0, nonspace = 0, letters = 0, symbols = 0, lines = 0, ellipsis_lines = 0, duplicate_lines = 0;
  int64_t top_char = 0;  // the commonest non-space character's count (words are runs of non-space: their mean length is nonspace / words)
};
TextStats text_stats(std::string_view text);  // text: valid UTF-8

// The rules in the order they are checked; a dropped document counts under its first failing rule.
enum class Rule { Kept, InvalidUtf8, TooFewWords, TooManyWords, ShortWords, LongWords, FewLetters, Symbols, EllipsisLines,
                  DuplicateLines, OneCharacter, kCount };
const char* rule_name(Rule r);  // "too_few_words", ...
// The first rule the document fails, with the value it measured (0 for Kept and InvalidUtf8).
struct Verdict {
  Rule rule = Rule::Kept;
  double value = 0;
};
Verdict judge(const TextStats& s, bool invalid_utf8, const FilterOptions& o);

struct FilterResult {
  int64_t documents = 0, bytes = 0, repaired = 0;
  int64_t docs[static_cast<int>(Rule::kCount)] = {}, rule_bytes[static_cast<int>(Rule::kCount)] = {};  // [Kept]: what is kept
  std::vector<std::string> shards;
  double seconds = 0;
  std::string report_json() const;  // report.json
  std::string table() const;        // the one-screen table
};

struct FilterRun {
  std::vector<std::string> inputs;
  std::string out_dir, name = "data";
  int64_t shard_bytes = int64_t{256} << 20;
  bool write_dropped = false;  // out_dir/dropped.jsonl: {"source", "rule", "value"} per dropped document
  FilterOptions rules;
};
// Streams the inputs (batches judged in parallel, written in input order) into out_dir.
FilterResult filter_corpus(const FilterRun& run);

}  // namespace llamatron
