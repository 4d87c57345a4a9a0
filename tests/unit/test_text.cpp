// The raw-text front of the data pipeline, piece by piece: UTF-8 decoding against the Unicode
// standard's own worked example, normalisation, MinHash estimates against exact Jaccard similarity,
// LSH band probabilities, the corpus reader's line handling and errors, and the shard writer's
// refusal to overwrite. (The whole filter and dedup are checked against Python in tests/e2e.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "expect_error.h"
#include "llamatron/corpus.h"
#include "llamatron/minhash.h"
#include "llamatron/utf8.h"
#include "llamatron/random.h"
#include "text/min_hashes.h"

namespace llamatron {
namespace {

namespace fs = std::filesystem;

std::u32string decode(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) out += utf8_next(s, i);
  return out;
}

TEST(Utf8, ReplacesMaximalSubpartsAsTheUnicodeStandardsExample) {
  // The Unicode Standard 15.0, section 3.9, "U+FFFD Substitution of Maximal Subparts" (Table 3-8):
  // 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 decodes to a, FFFD x3, b, FFFD, c, FFFD x2, d.
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  EXPECT_EQ(decode(in), std::u32string(U"a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd"));
  EXPECT_FALSE(utf8_valid(in));
  EXPECT_EQ(utf8_repair(in), "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD" "d");
}

TEST(Utf8, RejectsOverlongsSurrogatesAndCodePointsAboveTheLast) {
  // Table 3-7's well-formed ranges: C0/C1 lead bytes are overlong, E0 needs A0..BF, ED 80..9F
  // (no surrogates), F0 90..BF, F4 80..8F, F5..FF are never leads.
  for (const char* bad : {"\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF0\x80\x80\xAF", "\xF4\x90\x80\x80", "\xF5\x80", "\xFF"})
    EXPECT_FALSE(utf8_valid(bad)) << bad;
  EXPECT_EQ(decode("\xED\xA0\x80"), std::u32string(U"\uFFFD\uFFFD\uFFFD"));  // each byte its own maximal subpart
  EXPECT_EQ(decode("\xF4\x8F\xBF\xBF"), std::u32string(1, char32_t{0x10FFFF}));
  EXPECT_EQ(decode("\xE2\x82\xAC\xF0\x9F\x98\x80"), std::u32string(U"\u20AC\U0001F600"));
  EXPECT_TRUE(utf8_valid("\xE2\x82\xAC\xF0\x9F\x98\x80"));
  std::string out;
  for (char32_t c : {char32_t{0x41}, char32_t{0x7FF}, char32_t{0xFFFF}, char32_t{0x10FFFF}}) utf8_append(out, c);
  EXPECT_EQ(out, "A\xDF\xBF\xEF\xBF\xBF\xF4\x8F\xBF\xBF");
}

TEST(Normalize, LowerCasesAndCollapsesUnicodeWhiteSpace) {
  // U+3000 (ideographic space) and U+00A0 are White_Space; U+200B (zero-width space) is not.
  EXPECT_EQ(normalize_text("  Hello,\t\tWORLD\r\n\xE3\x80\x80\xC3\x89t\xC3\x89\xC2\xA0x\xE2\x80\x8By  "),
            "hello, world \xC3\xA9t\xC3\xA9 x\xE2\x80\x8By");
  EXPECT_EQ(normalize_text(" \n\t "), "");
}

TEST(Normalize, GrowsWhereLowerCaseOrRepairIsLonger) {
  // U+023A (2 bytes) lower-cases to U+2C65 (3 bytes); a lone 0xFF byte becomes U+FFFD (3 bytes):
  // outputs longer than their inputs, by as much as 3x, must still come out whole.
  std::string in, want;
  for (int i = 0; i < 1000; ++i) in += "\xC8\xBA", want += "\xE2\xB1\xA5";
  in += " ", want += " ";
  for (int i = 0; i < 1000; ++i) in += "\xFF", want += "\xEF\xBF\xBD";
  EXPECT_EQ(normalize_text(in), want);
}

// A text of n distinct words w_{from}, ..., w_{from+n-1}: its 1-word shingles are exactly that set.
std::string words(int from, int n) {
  std::string s;
  for (int i = from; i < from + n; ++i) s += (s.empty() ? "w" : " w") + std::to_string(i);
  return s;
}

TEST(MinHash, EstimatesJaccardWithinItsStandardError) {
  // For a set pair of Jaccard J the estimate is the mean of k Bernoulli(J) draws (ideal hashing):
  // its standard deviation is sqrt(J (1 - J) / k). Every estimate must lie within 4 of them.
  const int k = 1024;
  const MinHasher h(k, /*ngram=*/1, /*seed=*/7);
  std::vector<uint32_t> a(k), b(k);
  for (int overlap : {0, 100, 300, 500, 800, 1000}) {
    // A = w0..w999, B = w(1000-overlap)..w(1999-overlap): |A∩B| = overlap, |A∪B| = 2000 - overlap.
    ASSERT_TRUE(h.signature(words(0, 1000), a.data()));
    ASSERT_TRUE(h.signature(words(1000 - overlap, 1000), b.data()));
    const double j = overlap / (2000.0 - overlap);
    const double sd = std::sqrt(j * (1 - j) / k);
    EXPECT_NEAR(estimated_jaccard(a.data(), b.data(), k), j, 4 * sd + 1e-12) << "overlap " << overlap;
  }
  // Multisets do not count: repeating a text's words leaves its shingle set, and signature, alone.
  ASSERT_TRUE(h.signature(words(0, 50) + " " + words(0, 50), b.data()));
  ASSERT_TRUE(h.signature(words(0, 50), a.data()));
  EXPECT_EQ(a, b);
  EXPECT_FALSE(h.signature("", a.data()));
}

TEST(MinHash, ShinglesAreConsecutiveWordRuns) {
  // With 3-word shingles "a b c d" has {a b c, b c d}; "a b c x" has {a b c, b c x}: J = 1/3.
  const int k = 1024;
  const MinHasher h(k, 3, 11);
  std::vector<uint32_t> a(k), b(k), c(k);
  ASSERT_TRUE(h.signature("a b c d", a.data()));
  ASSERT_TRUE(h.signature("a b c x", b.data()));
  EXPECT_NEAR(estimated_jaccard(a.data(), b.data(), k), 1.0 / 3, 4 * std::sqrt((1.0 / 3) * (2.0 / 3) / k));
  ASSERT_TRUE(h.signature("a b", c.data()));  // fewer words than n: the whole text is one shingle
  ASSERT_TRUE(h.signature("a b", b.data()));
  EXPECT_EQ(b, c);
  EXPECT_DOUBLE_EQ(estimated_jaccard(a.data(), a.data(), k), 1.0);
}

TEST(MinHash, KernelsComputeTheHashFamilyInFull64BitArithmetic) {
  // h_k(x) = bits 32..63 of (a_k x + b_k) mod 2^64, written here with 64-bit integers; both kernels
  // (the 32-bit-lane rewrite of it) must give every minimum exactly, for num_perm not a multiple of 8 too.
  Rng rng(3);
  for (int n : {1, 7, 8, 64, 100, 128, 131}) {
    std::vector<uint64_t> a(n), b(n);
    std::vector<uint32_t> alo(n), ahi(n), blo(n), bhi(n), xs(257);
    for (int k = 0; k < n; ++k) {
      a[k] = rng.next(), b[k] = rng.next();
      alo[k] = static_cast<uint32_t>(a[k]), ahi[k] = static_cast<uint32_t>(a[k] >> 32);
      blo[k] = static_cast<uint32_t>(b[k]), bhi[k] = static_cast<uint32_t>(b[k] >> 32);
    }
    for (auto& x : xs) x = static_cast<uint32_t>(rng.next());
    xs[0] = 0, xs[1] = UINT32_MAX;
    std::vector<uint32_t> want(n, UINT32_MAX);
    for (uint32_t x : xs)
      for (int k = 0; k < n; ++k) want[k] = std::min(want[k], static_cast<uint32_t>((a[k] * x + b[k]) >> 32));
    const MinHashConstants c{alo.data(), ahi.data(), blo.data(), bhi.data(), n};
    std::vector<uint32_t> generic(n, UINT32_MAX), avx2(n, UINT32_MAX);
    min_hashes_generic(xs.data(), xs.size(), c, generic.data());
    EXPECT_EQ(generic, want) << n;
    if (!cpu_has_avx2()) continue;  // the portable kernel is the one this CPU runs
    min_hashes_avx2(xs.data(), xs.size(), c, avx2.data());
    EXPECT_EQ(avx2, want) << n;
  }
}

TEST(Lsh, BandsShareABucketExactlyWhenTheirRowsAreEqual) {
  std::vector<uint32_t> a(32), b(32);
  for (int i = 0; i < 32; ++i) a[i] = b[i] = 1000 + i;
  b[5] = 7;  // band 1 of 4-row bands differs
  for (int band = 0; band < 8; ++band) EXPECT_EQ(band_key(a.data(), band, 4) == band_key(b.data(), band, 4), band != 1) << band;
  // Equal rows in different bands are different buckets.
  std::vector<uint32_t> same(8, 42);
  EXPECT_NE(band_key(same.data(), 0, 4), band_key(same.data(), 1, 4));
}

TEST(Lsh, OptimalBandsFitTheBudgetAndPutTheThresholdOnTheSCurve) {
  for (double t : {0.5, 0.7, 0.8, 0.9}) {
    const LshBands lb = optimal_bands(t, 128);
    ASSERT_GT(lb.bands, 0);
    EXPECT_LE(lb.bands * lb.rows, 128);
    // The S-curve 1 - (1 - s^r)^b rises through t: well below it at t - 0.2, well above at t + 0.1.
    const auto p = [&](double s) { return 1 - std::pow(1 - std::pow(s, lb.rows), lb.bands); };
    EXPECT_LT(p(t - 0.2), 0.5) << t;
    EXPECT_GT(p(std::min(1.0, t + 0.1)), 0.5) << t;
  }
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / "llamatron_test_text" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::vector<Document> read_all(const std::vector<std::string>& inputs, size_t batch = 3) {
  CorpusReader reader(inputs);
  std::vector<Document> docs, b(batch);
  for (size_t n; (n = reader.next_batch(b)) > 0;)
    for (size_t i = 0; i < n; ++i) docs.push_back(b[i]);
  return docs;
}

TEST(CorpusReader, SkipsBlankLinesHandlesCrlfAndNamesLines) {
  const fs::path d = fresh_dir("reader");
  // CRLF endings, a blank and a white-space-only line, no newline at the end, an escaped string.
  write_file(d / "a.jsonl", "{\"text\": \"one\", \"id\": 1}\r\n\r\n   \n{\"text\": \"t\\u00e9\\nx\"}\r\n{\"text\":\"last\"}");
  write_file(d / "b.txt", "a whole file\nis one document\n");
  write_file(d / "empty.txt", "");
  const std::vector<Document> docs = read_all({(d / "a.jsonl").string(), (d / "empty.txt").string(), (d / "b.txt").string()}, 2);
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0].text, "one");
  EXPECT_EQ(docs[0].json, "{\"text\": \"one\", \"id\": 1}");  // the line as written, less its CR: the writer keeps its fields
  EXPECT_EQ(docs[0].line, 1);
  EXPECT_EQ(docs[1].text, "t\xC3\xA9\nx");
  EXPECT_EQ(docs[1].line, 4);
  EXPECT_EQ(docs[2].text, "last");
  EXPECT_EQ(docs[2].line, 5);
  EXPECT_EQ(docs[3].text, "a whole file\nis one document\n");
  EXPECT_TRUE(docs[3].json.empty());
  for (const Document& doc : docs) EXPECT_FALSE(doc.invalid_utf8);
}

TEST(CorpusReader, RepairsInvalidUtf8AndFlagsIt) {
  const fs::path d = fresh_dir("repair");
  write_file(d / "a.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"bad \xFF byte\"}\n");
  const std::vector<Document> docs = read_all({(d / "a.jsonl").string()});
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_FALSE(docs[0].invalid_utf8);
  EXPECT_TRUE(docs[1].invalid_utf8);
  EXPECT_EQ(docs[1].text, "bad \xEF\xBF\xBD byte");
}

TEST(CorpusReader, BadLinesNameTheFileAndLine) {
  const fs::path d = fresh_dir("bad");
  const std::string a = (d / "a.jsonl").string();
  write_file(a, "{\"text\": \"ok\"}\n[1, 2]\n");
  expect_error_all([&] { read_all({a}); }, {a + ":2", "not a JSON object"});
  write_file(a, "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  expect_error_all([&] { read_all({a}); }, {a + ":3", "no string \"text\" field"});
  write_file(a, "{\"text\": 5}\n");
  expect_error_all([&] { read_all({a}); }, {a + ":1", "no string \"text\" field"});
  write_file(a, "{\"text\": \"unterminated}\n");
  expect_error_all([&] { read_all({a}); }, {a + ":1", "not a JSON object"});
  expect_error([&] { read_all({(d / "missing.jsonl").string()}); }, "missing.jsonl");
  write_file(d / "x.csv", "text\n");
  expect_error([&] { read_all({(d / "x.csv").string()}); }, "x.csv");
}

TEST(ShardWriter, WritesOnlyOnCommitAndNeverOverwrites) {
  const fs::path d = fresh_dir("writer");
  Document doc;
  doc.text = "hi", doc.file = "f.txt", doc.line = 1;
  {
    ShardWriter w(d.string(), "kept", 1 << 20, {"report.json"});
    w.write(doc);
    EXPECT_FALSE(fs::exists(d / "kept_000000.jsonl"));  // not before commit
  }
  // Destroyed uncommitted (an error): nothing is left behind, not even the temporary directory.
  EXPECT_TRUE(fs::is_empty(d));
  {
    ShardWriter w(d.string(), "kept", 1 << 20, {"report.json"});
    w.write(doc);
    w.write_extra("report.json", "{}");
    EXPECT_EQ(w.commit(), std::vector<std::string>{(d / "kept_000000.jsonl").string()});
  }
  std::ifstream in(d / "kept_000000.jsonl");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "{\"source\":\"f.txt\",\"text\":\"hi\"}");
  expect_error([&] { ShardWriter w(d.string(), "kept", 1 << 20, {"report.json"}); }, "kept_000000.jsonl");
}

}  // namespace
}  // namespace llamatron
