#include "llamatron/text_filter.h"

#include <omp.h>
#include <unicode/uchar.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "llamatron/corpus.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/utf8.h"

namespace llamatron {
namespace {

constexpr char32_t kEllipsis = 0x2026;  // '…'

// A line without its leading and trailing white space.
std::string_view strip(std::string_view line) {
  size_t b = line.size(), e = 0;
  for (size_t i = 0; i < line.size();) {
    const size_t at = i;
    if (!is_white_space(utf8_next(line, i))) {
      if (b == line.size()) b = at;
      e = i;
    }
  }
  return b < e ? line.substr(b, e - b) : std::string_view{};
}

bool ends_in_ellipsis(std::string_view s) {
  return (s.size() >= 3 && s.substr(s.size() - 3) == "...") || (s.size() >= 3 && s.substr(s.size() - 3) == "\xE2\x80\xA6");
}

}  // namespace

TextStats text_stats(std::string_view text) {
  TextStats s;
  std::array<int64_t, 128> ascii{};
  std::unordered_map<char32_t, int64_t> other;
  bool in_word = false;
  int dots = 0;  // the run of '.' so far: "..." counts once per three, as str.count does
  for (size_t i = 0; i < text.size();) {
    const char32_t c = utf8_next(text, i);
    ++s.chars;
    if (is_white_space(c)) {
      in_word = false;
    } else {
      if (!in_word) ++s.words;
      in_word = true;
      ++s.nonspace;
      if (u_isalpha(static_cast<UChar32>(c))) ++s.letters;
      c < 0x80 ? ++ascii[c] : ++other[c];
    }
    if (c == '#' || c == kEllipsis) ++s.symbols;
    dots = c == '.' ? dots + 1 : 0;
    if (dots == 3) ++s.symbols, dots = 0;
  }
  for (int64_t n : ascii) s.top_char = std::max(s.top_char, n);
  for (const auto& [c, n] : other) s.top_char = std::max(s.top_char, n);
  std::unordered_set<std::string_view> seen;
  for (size_t from = 0; from <= text.size();) {
    size_t nl = text.find('\n', from);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = strip(text.substr(from, nl - from));
    from = nl + 1;
    if (line.empty()) continue;
    ++s.lines;
    if (ends_in_ellipsis(line)) ++s.ellipsis_lines;
    if (!seen.insert(line).second) ++s.duplicate_lines;
  }
  return s;
}

const char* rule_name(Rule r) {
  static const char* names[] = {"kept", "invalid_utf8", "too_few_words", "too_many_words", "short_words", "long_words", "few_letters",
                                "symbols", "ellipsis_lines", "duplicate_lines", "one_character"};
  return names[static_cast<int>(r)];
}

Verdict judge(const TextStats& s, bool invalid_utf8, const FilterOptions& o) {
  if (invalid_utf8 && !o.repair_utf8) return {Rule::InvalidUtf8, 0};
  const auto ratio = [](int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  if (s.words < o.min_words) return {Rule::TooFewWords, static_cast<double>(s.words)};
  if (s.words > o.max_words) return {Rule::TooManyWords, static_cast<double>(s.words)};
  // The remaining rules measure something only where it exists (a document of no lines has no duplicated lines).
  const double mean = ratio(s.nonspace, s.words);
  if (s.words > 0 && mean < o.min_mean_word_length) return {Rule::ShortWords, mean};
  if (s.words > 0 && mean > o.max_mean_word_length) return {Rule::LongWords, mean};
  const double alpha = ratio(s.letters, s.nonspace);
  if (s.nonspace > 0 && alpha < o.min_alpha_fraction) return {Rule::FewLetters, alpha};
  const double sym = ratio(s.symbols, s.words);
  if (s.words > 0 && sym > o.max_symbol_ratio) return {Rule::Symbols, sym};
  const double ell = ratio(s.ellipsis_lines, s.lines);
  if (s.lines > 0 && ell > o.max_ellipsis_lines) return {Rule::EllipsisLines, ell};
  const double dup = ratio(s.duplicate_lines, s.lines);
  if (s.lines > 0 && dup > o.max_duplicate_lines) return {Rule::DuplicateLines, dup};
  const double top = ratio(s.top_char, s.nonspace);
  if (o.max_top_char_fraction > 0 && s.nonspace > 0 && top > o.max_top_char_fraction) return {Rule::OneCharacter, top};
  return {};
}

std::string FilterResult::report_json() const {
  nlohmann::ordered_json j;
  j["documents"] = documents;
  j["bytes"] = bytes;
  j["kept_documents"] = docs[0];
  j["kept_bytes"] = rule_bytes[0];
  j["repaired_utf8"] = repaired;
  nlohmann::ordered_json dropped = nlohmann::ordered_json::object();
  for (int r = 1; r < static_cast<int>(Rule::kCount); ++r)
    dropped[rule_name(static_cast<Rule>(r))] = {{"documents", docs[r]}, {"bytes", rule_bytes[r]}};
  j["dropped"] = dropped;
  j["seconds"] = seconds;
  return j.dump(2) + "\n";
}

std::string FilterResult::table() const {
  std::string t;
  char line[160];
  const auto row = [&](const char* name, int64_t n, int64_t b) {
    std::snprintf(line, sizeof(line), "  %-16s %10lld docs %6.2f%% %12lld bytes %6.2f%%\n", name, static_cast<long long>(n),
                  documents ? 100.0 * n / documents : 0.0, static_cast<long long>(b), bytes ? 100.0 * b / bytes : 0.0);
    t += line;
  };
  row("input", documents, bytes);
  row("kept", docs[0], rule_bytes[0]);
  for (int r = 1; r < static_cast<int>(Rule::kCount); ++r)
    if (docs[r] > 0) row(rule_name(static_cast<Rule>(r)), docs[r], rule_bytes[r]);
  if (repaired > 0) std::snprintf(line, sizeof(line), "  (%lld kept documents had invalid UTF-8, repaired)\n", static_cast<long long>(repaired)), t += line;
  std::snprintf(line, sizeof(line), "  %.2f s, %.1f MB/s\n", seconds, seconds > 0 ? bytes / seconds / 1e6 : 0.0);
  return t + line;
}

FilterResult filter_corpus(const FilterRun& run) {
  const auto start = std::chrono::steady_clock::now();
  CorpusReader reader(run.inputs);
  std::vector<std::string> extras = {"report.json"};
  if (run.write_dropped) extras.push_back("dropped.jsonl");
  ShardWriter writer(run.out_dir, run.name, run.shard_bytes, extras);
  FilterResult r;
  std::unique_ptr<CheckedFile> dropped;
  if (run.write_dropped) dropped = std::make_unique<CheckedFile>(writer.extra_path("dropped.jsonl"), CheckedFile::Truncate, "dropped.jsonl");
  std::string lines;
  constexpr size_t kBatch = 2048;  // documents judged together: bounds memory, keeps both cores busy
  std::vector<Document> batch(kBatch);
  std::vector<Verdict> verdicts(kBatch);
  for (size_t n; (n = reader.next_batch(batch)) > 0;) {
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < n; ++i) verdicts[i] = judge(text_stats(batch[i].text), batch[i].invalid_utf8, run.rules);
    for (size_t i = 0; i < n; ++i) {
      const Document& d = batch[i];
      const int rule = static_cast<int>(verdicts[i].rule);
      const auto bytes = static_cast<int64_t>(d.text.size());
      ++r.documents, r.bytes += bytes;
      ++r.docs[rule], r.rule_bytes[rule] += bytes;
      if (verdicts[i].rule == Rule::Kept) {
        writer.write(d);
        r.repaired += d.invalid_utf8;
      } else if (run.write_dropped) {
        lines += nlohmann::json{{"source", d.source()}, {"rule", rule_name(verdicts[i].rule)}, {"value", verdicts[i].value}}.dump() + "\n";
      }
    }
    if (dropped) dropped->write(lines), lines.clear();
  }
  if (dropped) dropped->close(true);
  if (r.documents == 0) throw Error("the inputs hold no documents: nothing to filter");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  writer.write_extra("report.json", r.report_json());
  r.shards = writer.commit();
  return r;
}

}  // namespace llamatron
