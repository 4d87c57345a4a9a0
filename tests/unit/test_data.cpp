// Token sources: llm.c shards round-trip and reject bad files; the Markov source's entropy floor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "llamatron/data.h"
#include "llamatron/errors.h"

namespace llamatron {
namespace {

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "llamatron_test_data";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void expect_open_fails(const std::string& path, int64_t vocab, const std::string& needle) {
  try {
    open_llmc_shard(path, vocab);
    ADD_FAILURE() << "opened " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "message names the file: " << e.what();
  }
}

TEST(LlmcShard, RoundTripsBothTokenWidths) {
  for (int32_t top : {1000, 100000}) {  // uint16 (version 1) and uint32 (version 7) shards
    std::vector<int32_t> tokens;
    for (int32_t i = 0; i < 300; ++i) tokens.push_back((i * 7919) % top);
    const std::string path = temp_path("rt_" + std::to_string(top) + ".bin");
    write_llmc_shard(path, tokens);
    EXPECT_EQ(std::filesystem::file_size(path), 1024u + tokens.size() * (top < 65536 ? 2 : 4));
    LlmcShardSource src({path}, top, 16);
    // Windows of 17 tokens starting every 16: the llm.c layout.
    std::vector<int32_t> batch(3 * 17);
    src.next_batch(3, 16, batch.data());
    for (int b = 0; b < 3; ++b)
      for (int t = 0; t <= 16; ++t) EXPECT_EQ(batch[b * 17 + t], tokens[b * 16 + t]);
  }
}

TEST(LlmcShard, WrapsIntoTheNextEpoch) {
  std::vector<int32_t> tokens(40);
  for (int i = 0; i < 40; ++i) tokens[i] = i;
  const std::string path = temp_path("wrap.bin");
  write_llmc_shard(path, tokens);
  LlmcShardSource src({path}, 64, 16);
  std::vector<int32_t> batch(3 * 17);
  src.next_batch(3, 16, batch.data());  // windows at 0, 16, then 32 does not fit: back to 0
  EXPECT_EQ(batch[2 * 17], 0);
  EXPECT_EQ(src.epoch(), 1);
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
  expect_open_fails(variant("trunc.bin", [](auto& b) { b.resize(b.size() - 10); }), 64, "truncated");
  expect_open_fails(variant("magic.bin", [&](auto& b) { set_i32(b, 0, 12345); }), 64, "wrong magic");
  expect_open_fails(variant("version.bin", [&](auto& b) { set_i32(b, 1, 3); }), 64, "version");
  expect_open_fails(variant("short.bin", [](auto& b) { b.resize(100); }), 64, "header");
  expect_open_fails(good, 5, "vocab_size");  // token 5 >= vocab 5
  expect_open_fails(temp_path("does_not_exist.bin"), 64, "cannot open");
  EXPECT_THROW(LlmcShardSource({good}, 64, 100), Error);  // 100 tokens < seq_len + 1
}

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
