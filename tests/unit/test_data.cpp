// The data pipeline: llm.c shards and Megatron datasets (the latter written here, by hand, from
// the documented format) read back and rejected when bad; windows, epochs and the per-epoch
// shuffle (a permutation: every window once), disjoint reads across DP ranks, blend proportions,
// resuming at a position, the byte-level preparation round trip, and the Markov source's floor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "expect_error.h"
#include "llamatron/prepare.h"

namespace llamatron {
namespace {

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "llamatron_test_data";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::vector<int32_t> iota_tokens(int n, int modulo) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7919) % modulo;
  return t;
}

TEST(LlmcShard, RoundTripsBothTokenWidthsAsConsecutiveWindows) {
  for (int32_t top : {1000, 100000}) {  // uint16 (version 1) and uint32 (version 7) shards
    const std::vector<int32_t> tokens = iota_tokens(300, top);
    const std::string path = temp_path("rt_" + std::to_string(top) + ".bin");
    write_llmc_shard(path, tokens);
    EXPECT_EQ(std::filesystem::file_size(path), 1024u + tokens.size() * (top < 65536 ? 2 : 4));
    WindowSource src(open_llmc_corpus({path}, top), path, 16, false, 0);
    std::vector<int32_t> batch(3 * 17);
    src.next_batch(3, 16, batch.data());  // in file order: windows of 17 tokens every 16, llm.c's layout
    for (int b = 0; b < 3; ++b)
      for (int t = 0; t <= 16; ++t) EXPECT_EQ(batch[b * 17 + t], tokens[b * 16 + t]);
  }
}

TEST(LlmcShard, ShardsConcatenateAndEpochsWrap) {
  write_llmc_shard(temp_path("a.bin"), std::vector<int32_t>(20, 1));
  write_llmc_shard(temp_path("b.bin"), std::vector<int32_t>(20, 2));
  WindowSource src(open_llmc_corpus({temp_path("a.bin"), temp_path("b.bin")}, 8), "ab", 16, false, 0);
  EXPECT_EQ(src.windows(), 2);  // 40 tokens: windows at 0 and 16 (the one at 32 would need 49)
  std::vector<int32_t> w(3 * 17);
  src.read(0, 3, 16, w.data());
  EXPECT_EQ(w[17 + 3], 1);         // window 1 (tokens 16-32) starts in the first shard...
  EXPECT_EQ(w[17 + 4], 2);         // ...and runs into the second
  EXPECT_EQ(w[2 * 17], 1);         // sample 2 is window 0 again...
  EXPECT_EQ(src.epoch(2), 1);      // ...of the second epoch
}

TEST(LlmcShard, RejectsBadFiles) {
  const std::string good = temp_path("good.bin");
  write_llmc_shard(good, std::vector<int32_t>(100, 5));
  std::vector<char> bytes(std::filesystem::file_size(good));
  std::ifstream(good, std::ios::binary).read(bytes.data(), bytes.size());
  auto variant = [&](const std::string& name, auto mutate) {
    std::vector<char> b = bytes;
    mutate(b);
    const std::string p = temp_path(name);
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(b.data(), b.size());
    return p;
  };
  auto set_i32 = [](std::vector<char>& b, int at, int32_t v) { std::memcpy(b.data() + 4 * at, &v, 4); };
  const auto open = [](const std::string& p, int64_t vocab) { return [=] { open_llmc_corpus({p}, vocab); }; };
  const std::string trunc = variant("trunc.bin", [](auto& b) { b.resize(b.size() - 10); });
  expect_error_all(open(trunc, 64), {trunc, "truncated"});
  const std::string magic = variant("magic.bin", [&](auto& b) { set_i32(b, 0, 12345); });
  expect_error_all(open(magic, 64), {magic, "wrong magic"});
  const std::string version = variant("version.bin", [&](auto& b) { set_i32(b, 1, 3); });
  expect_error_all(open(version, 64), {version, "version"});
  const std::string count = variant("count.bin", [&](auto& b) { set_i32(b, 2, 99); });  // header/size mismatch
  expect_error_all(open(count, 64), {count, "header says 99 tokens"});
  const std::string shorter = variant("short.bin", [](auto& b) { b.resize(100); });
  expect_error_all(open(shorter, 64), {shorter, "header"});
  expect_error_all(open(good, 5), {good, "vocab_size"});  // token 5 >= vocab 5
  expect_error_all(open(temp_path("does_not_exist.bin"), 64), {"does_not_exist.bin", "cannot open"});
  // seq_len + 1 larger than the dataset; an empty dataset.
  expect_error_all([&] { WindowSource(open_llmc_corpus({good}, 64), good, 100, true, 0); }, {good, "fewer than train.seq_length + 1"});
  write_llmc_shard(temp_path("empty.bin"), {});
  expect_error_all([&] { WindowSource(open_llmc_corpus({temp_path("empty.bin")}, 64), "empty.bin", 4, true, 0); }, {"empty"});
}

// --- Megatron: files written here byte by byte from FACTS.md, independent of write_megatron. ---
template <typename T>
void put(std::ofstream& f, T v) {
  f.write(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Documents as sequences (one each) with token type `Tok` and dtype code `code`.
template <typename Tok>
void write_megatron_by_hand(const std::string& prefix, const std::vector<std::vector<int64_t>>& docs, uint8_t code) {
  std::ofstream bin(prefix + ".bin", std::ios::binary | std::ios::trunc), idx(prefix + ".idx", std::ios::binary | std::ios::trunc);
  for (const auto& d : docs)
    for (int64_t t : d) put(bin, static_cast<Tok>(t));
  idx.write("MMIDIDX\0\0", 9);
  put<uint64_t>(idx, 1);
  put<uint8_t>(idx, code);
  put<uint64_t>(idx, docs.size());
  put<uint64_t>(idx, docs.size() + 1);
  for (const auto& d : docs) put<int32_t>(idx, static_cast<int32_t>(d.size()));
  int64_t off = 0;
  for (const auto& d : docs) put<int64_t>(idx, off), off += static_cast<int64_t>(d.size() * sizeof(Tok));
  for (size_t i = 0; i <= docs.size(); ++i) put<int64_t>(idx, static_cast<int64_t>(i));
}

const std::vector<std::vector<int64_t>> kDocs = {{5, 6, 7, 99}, {1, 2, 99}, {300, 301, 302, 303, 304, 99}};

TEST(Megatron, ReadsEveryIntegerDtype) {
  const auto check = [](const std::string& prefix, int64_t vocab) {
    std::unique_ptr<TokenCorpus> c = open_megatron_corpus(prefix + ".idx", vocab);  // .idx, .bin or the prefix
    EXPECT_EQ(c->size(), 13);
    EXPECT_EQ(c->documents(), 3);
    std::vector<int32_t> got;
    for (int64_t i = 0; i < c->size(); ++i) got.push_back(c->token(i));
    EXPECT_EQ(got, std::vector<int32_t>({5, 6, 7, 99, 1, 2, 99, 300, 301, 302, 303, 304, 99}));
  };
  write_megatron_by_hand<uint16_t>(temp_path("m_u16"), kDocs, 8);
  check(temp_path("m_u16"), 512);
  write_megatron_by_hand<int32_t>(temp_path("m_i32"), kDocs, 4);
  check(temp_path("m_i32"), 512);
  write_megatron_by_hand<int64_t>(temp_path("m_i64"), kDocs, 5);
  check(temp_path("m_i64"), 512);
  write_megatron_by_hand<int16_t>(temp_path("m_i16"), kDocs, 3);
  check(temp_path("m_i16"), 512);
  // The library's writer produces what the format says (compare with the hand-written bytes).
  std::vector<std::vector<int32_t>> docs32;
  for (const auto& d : kDocs) docs32.emplace_back(d.begin(), d.end());
  write_megatron(temp_path("m_lib"), docs32);
  for (const char* ext : {".bin", ".idx"}) {
    std::ifstream a(temp_path("m_lib") + ext, std::ios::binary), b(temp_path("m_u16") + ext, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {})) << ext;
  }
}

TEST(Megatron, RejectsBadFiles) {
  const std::string p = temp_path("m_bad");
  const auto rewrite = [&](auto mutate) {
    write_megatron_by_hand<uint16_t>(p, kDocs, 8);
    for (const char* ext : {".bin", ".idx"}) {
      std::ifstream f(p + ext, std::ios::binary);
      std::string bytes(std::istreambuf_iterator<char>(f), {});
      mutate(std::string(ext), bytes);
      std::ofstream(p + ext, std::ios::binary | std::ios::trunc) << bytes;
    }
  };
  const auto open = [&](int64_t vocab = 512) { return [=] { open_megatron_corpus(p, vocab); }; };
  rewrite([](const std::string& ext, std::string& b) { if (ext == ".idx") b[0] = 'X'; });
  expect_error_all(open(), {p + ".idx", "wrong magic"});
  rewrite([](const std::string& ext, std::string& b) { if (ext == ".idx") b[17] = 6; });  // float64
  expect_error_all(open(), {p + ".idx", "dtype code 6"});
  rewrite([](const std::string& ext, std::string& b) { if (ext == ".idx") b[17] = 42; });
  expect_error_all(open(), {p + ".idx", "dtype code 42"});
  rewrite([](const std::string& ext, std::string& b) { if (ext == ".bin") b.resize(b.size() - 2); });
  expect_error_all(open(), {p + ".bin", "truncated"});
  rewrite([](const std::string& ext, std::string& b) { if (ext == ".idx") b.resize(b.size() - 8); });
  expect_error_all(open(), {p + ".idx", "truncated"});
  rewrite([](const std::string&, std::string&) {});
  expect_error_all(open(300), {p + ".bin", "outside model.vocab_size 300"});
  expect_error_all([&] { open_megatron_corpus(temp_path("m_missing"), 512); }, {"m_missing.idx", "cannot open"});
}

// --- sampling ---------------------------------------------------------------------------------
std::shared_ptr<const TokenCorpus> counting_corpus(int64_t n) {  // token i == i % 60000
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(i % 60000);
  write_llmc_shard(temp_path("count.bin"), t);
  return open_llmc_corpus({temp_path("count.bin")}, 60000);
}

TEST(WindowSource, EachEpochVisitsEveryWindowOnceInAFreshOrder) {
  const auto corpus = counting_corpus(1001);
  WindowSource src(corpus, "count", 10, true, 42);  // 100 windows
  ASSERT_EQ(src.windows(), 100);
  std::vector<std::vector<int64_t>> orders(3);
  for (int e = 0; e < 3; ++e) {
    std::set<int64_t> seen;
    for (int64_t i = 0; i < 100; ++i) orders[e].push_back(src.window_of(e * 100 + i)), seen.insert(orders[e].back());
    EXPECT_EQ(seen.size(), 100u) << "epoch " << e << " is a permutation";
    EXPECT_EQ(*seen.begin(), 0);
    EXPECT_EQ(*seen.rbegin(), 99);
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);
  std::vector<int64_t> sorted(100);
  for (int i = 0; i < 100; ++i) sorted[i] = i;
  EXPECT_NE(orders[0], sorted) << "shuffled";
  // Deterministic in the seed, different across seeds; the tokens are the window's.
  WindowSource same(corpus, "count", 10, true, 42), other(corpus, "count", 10, true, 43);
  int differ = 0;
  for (int64_t s = 0; s < 100; ++s) {
    EXPECT_EQ(same.window_of(s), src.window_of(s));
    differ += other.window_of(s) != src.window_of(s);
  }
  EXPECT_GT(differ, 50);
  std::vector<int32_t> w(11);
  src.read(7, 1, 10, w.data());
  EXPECT_EQ(w[0], src.window_of(7) * 10);
  EXPECT_EQ(w[10], src.window_of(7) * 10 + 10);
}

// The trainer's reading pattern: DP rank r reads rows [r*B, (r+1)*B) of each global micro-batch of
// G = B * dp samples. Across ranks the reads are disjoint and cover each window once per epoch.
TEST(WindowSource, DataParallelRanksReadDisjointWindows) {
  const auto corpus = counting_corpus(2401);
  WindowSource src(corpus, "count", 10, true, 7);  // 240 windows
  const int64_t B = 3, dp = 4, G = B * dp, micro_batches = 240 / G;
  std::multiset<int64_t> windows;
  for (int64_t m = 0; m < micro_batches; ++m)
    for (int64_t r = 0; r < dp; ++r) {
      std::vector<int32_t> rows(B * 11);
      src.read(m * G + r * B, B, 10, rows.data());
      for (int64_t b = 0; b < B; ++b) windows.insert(rows[b * 11] / 10);
    }
  EXPECT_EQ(windows.size(), 240u);
  EXPECT_EQ(std::set<int64_t>(windows.begin(), windows.end()).size(), 240u) << "no window read twice in the epoch";
}

// Reading sequentially from a position gives the samples an uninterrupted run reads there.
TEST(WindowSource, ResumesExactlyAtAPosition) {
  const auto corpus = counting_corpus(1001);
  WindowSource straight(corpus, "count", 10, true, 5), resumed(corpus, "count", 10, true, 5);
  std::vector<int32_t> a(25 * 11), b(25 * 11);
  for (int i = 0; i < 9; ++i) straight.next_batch(25, 10, a.data());  // 225 samples: into the third epoch
  resumed.seek(straight.position());
  straight.next_batch(25, 10, a.data());
  resumed.next_batch(25, 10, b.data());
  EXPECT_EQ(a, b);
}

TEST(BlendSource, FollowsTheWeightsWithinOneSamplePerSource) {
  std::vector<std::unique_ptr<TokenSource>> parts;
  for (int d = 0; d < 3; ++d) parts.push_back(std::make_unique<MarkovSource>(64, 1, 4, 1, d));
  BlendSource blend(std::move(parts), {0.67, 0.14, 0.19});
  std::vector<int64_t> count(3, 0);
  for (int64_t s = 0; s < 3000; ++s) {
    const auto [d, k] = blend.locate(s);
    EXPECT_EQ(k, count[d]) << "each source is read in its own order";
    ++count[d];
    const double w[3] = {0.67, 0.14, 0.19};
    for (int i = 0; i < 3; ++i) EXPECT_LE(std::abs(count[i] - w[i] * (s + 1)), 1.0) << "after " << s + 1 << " samples";
  }
  // Random access agrees with the walk (going back restarts it), and reads come from the source.
  EXPECT_EQ(blend.locate(10), blend.locate(10));
  const auto [d, k] = blend.locate(2999);
  std::vector<int32_t> x(17), y(17);
  blend.read(2999, 1, 16, x.data());
  MarkovSource(64, 1, 4, 1, d).read(k, 1, 16, y.data());
  EXPECT_EQ(x, y);
}

// --- preparation --------------------------------------------------------------------------------
TEST(Prepare, TextAndJsonlRoundTripThroughBothFormats) {
  const std::string dir = temp_path("prep");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/a.txt") << "héllo wörld";
  std::ofstream(dir + "/b.jsonl") << "{\"text\": \"first\"}\n\n{\"text\": \"second \\u00e9\", \"id\": 3}\n";
  PrepareOptions o;
  o.inputs = {dir + "/a.txt", dir + "/b.jsonl"};
  o.out_dir = dir + "/out";
  o.megatron = true;
  o.shard_tokens = 10;
  o.threads = 2;
  const PrepareResult r = prepare_data(o);
  std::vector<int32_t> expected;
  for (const std::string doc : {"héllo wörld", "first", "second \u00e9"})
    for (int32_t t : byte_tokenize(doc)) expected.push_back(t);
  EXPECT_EQ(r.documents, 3);
  EXPECT_EQ(r.tokens, static_cast<int64_t>(expected.size()));
  std::vector<std::string> shards;
  for (const auto& f : r.files)
    if (f.find("_0") != std::string::npos) shards.push_back(f);
  EXPECT_EQ(shards.size(), (expected.size() + 9) / 10);
  for (const auto& corpus : {open_llmc_corpus(shards, kByteVocab), open_megatron_corpus(o.out_dir + "/data", kByteVocab)}) {
    std::vector<int32_t> got;
    for (int64_t i = 0; i < corpus->size(); ++i) got.push_back(corpus->token(i));
    EXPECT_EQ(got, expected);
  }
  EXPECT_EQ(open_megatron_corpus(o.out_dir + "/data", kByteVocab)->documents(), 3);
  EXPECT_NE(inspect_data(o.out_dir + "/data.idx").find("documents: 3"), std::string::npos);
  EXPECT_NE(inspect_data(shards[0]).find("llm.c token shard"), std::string::npos);
}

TEST(Prepare, BadInputsNameTheFileAndLine) {
  const std::string dir = temp_path("prep_bad");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/bad.jsonl") << "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n";
  std::ofstream(dir + "/empty.txt") << "";
  PrepareOptions o;
  o.out_dir = dir + "/out";
  o.inputs = {dir + "/bad.jsonl"};
  expect_error_all([&] { prepare_data(o); }, {"bad.jsonl:2", "\"text\""});
  o.inputs = {dir + "/empty.txt"};
  expect_error_all([&] { prepare_data(o); }, {"no documents"});
  o.inputs = {dir + "/missing.txt"};
  expect_error_all([&] { prepare_data(o); }, {"missing.txt", "does not exist"});
}

// --- synthetic ----------------------------------------------------------------------------------
// The floor of an order-1 chain is sum_c pi(c) H(row c); check it against a direct Monte Carlo
// estimate of -log p(next | context) over sampled windows (a 4-sigma bound).
TEST(MarkovSource, EntropyFloorMatchesSampledNegLogLikelihood) {
  const int64_t V = 32, branching = 4, T = 32;
  MarkovSource src(V, 1, branching, 7, 11);
  const double floor = src.entropy_floor(T);
  EXPECT_GT(floor, 0.3);
  EXPECT_LT(floor, std::log(branching));
  // Rebuild the transition probabilities from long samples and score the samples with them.
  std::vector<int32_t> tokens(256 * (T + 1));
  std::vector<std::vector<double>> counts(V, std::vector<double>(V, 0));
  std::vector<std::vector<int32_t>> batches;
  for (int rep = 0; rep < 20; ++rep) {
    src.next_batch(256, T, tokens.data());
    batches.push_back(tokens);
    for (int b = 0; b < 256; ++b)
      for (int t = 0; t < T; ++t) counts[tokens[b * (T + 1) + t]][tokens[b * (T + 1) + t + 1]] += 1;
  }
  double nll = 0, nll2 = 0, n = 0;
  for (const auto& bt : batches)
    for (int b = 0; b < 256; ++b)
      for (int t = 0; t < T; ++t) {
        const auto& row = counts[bt[b * (T + 1) + t]];
        double total = 0;
        for (double c : row) total += c;
        const double x = -std::log(row[bt[b * (T + 1) + t + 1]] / total);
        nll += x, nll2 += x * x, n += 1;
      }
  const double mean = nll / n, sd = std::sqrt(nll2 / n - mean * mean);
  EXPECT_NEAR(mean, floor, 4 * sd / std::sqrt(n) + 0.01);  // + plug-in estimator bias (~V*b/2n)
}

}  // namespace
}  // namespace llamatron
