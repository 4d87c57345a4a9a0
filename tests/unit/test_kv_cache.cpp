// Generation's KV cache on the CPU backend: the cached logits (a prompt, then one token at a time,
// two sequences at different positions in the same decode calls) against one full forward over the
// same tokens, the path tests/unit/test_model.cpp checks against PyTorch. fp32: summation order
// only; bf16: no worse than twice the bf16 full forward's own error against fp32, plus one rounding.
// The emulated CUDA backend: tests/emu/test_backend.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "../kv_cache_expect.h"
#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/model.h"

namespace llamatron {
namespace {

ModelConfig small_model() {
  ModelConfig cfg;
  cfg.vocab_size = 97, cfg.dim = 64, cfg.n_layers = 2, cfg.n_heads = 4, cfg.n_kv_heads = 2, cfg.ffn_dim = 96, cfg.max_seq_len = 64;
  return cfg;
}

std::vector<int32_t> sequence(uint64_t seed, int64_t T) {
  MarkovSource src(97, 1, 4, seed, 1);
  std::vector<int32_t> t(T + 1);
  src.next_batch(1, T, t.data());
  t.pop_back();
  return t;
}

TEST(KvCache, CachedLogitsEqualTheFullForward) {
  const ModelConfig cfg = small_model();
  const int64_t T = 40, V = cfg.vocab_size, prompt = 13;
  const std::vector<int32_t> a = sequence(1, T), b = sequence(2, T);
  LlamaModel f32(cfg, DType::F32), bf(cfg, DType::BF16);
  f32.init_weights(7), bf.init_weights(7);
  const std::vector<float> ref_a = test::full_logits(f32, a), ref_b = test::full_logits(f32, b);
  const test::CachedPair c32 = test::cached_logits(f32, a, prompt, b);
  const double scale = test::max_abs(ref_a);
  EXPECT_LE(test::max_diff_from(c32.a, ref_a, prompt - 1, V), 1e-5 * scale);
  EXPECT_LE(test::max_diff_from(c32.b, ref_b, 0, V), 1e-5 * scale);
  const std::vector<float> full_a = test::full_logits(bf, a), full_b = test::full_logits(bf, b);
  const test::CachedPair c16 = test::cached_logits(bf, a, prompt, b);
  const double bound_a = 2 * test::max_diff_from(full_a, ref_a, prompt - 1, V) + std::ldexp(scale, -8);
  const double bound_b = 2 * test::max_diff_from(full_b, ref_b, 0, V) + std::ldexp(scale, -8);
  EXPECT_LE(test::max_diff_from(c16.a, ref_a, prompt - 1, V), bound_a);
  EXPECT_LE(test::max_diff_from(c16.b, ref_b, 0, V), bound_b);
}

// Packed documents as in training: eods in the prompt and among the decoded tokens; the cached
// logits against the full forward with the same rules (checked against PyTorch in test_model.cpp),
// for each combination of the switches. The control: the rules change the logits.
TEST(KvCache, CachedLogitsFollowTheDocumentRules) {
  const ModelConfig cfg = small_model();
  const int64_t T = 40, V = cfg.vocab_size, prompt = 13;
  std::vector<int32_t> a = sequence(3, T), b = sequence(4, T);
  const int32_t eod = 96;
  for (int64_t i : {4, 12, 20, 21, 33}) a[i] = eod;  // in the prompt, at its last token, decoded (twice in a row)
  for (int64_t i : {0, 9, 30}) b[i] = eod;
  LlamaModel m(cfg, DType::F32);
  m.init_weights(11);
  const std::vector<float> plain = test::full_logits(m, a);
  for (int mask = 0; mask < 2; ++mask)
    for (int pos = 0; pos < 2; ++pos) {
      SCOPED_TRACE("reset_attention_mask " + std::to_string(mask) + ", reset_position_ids " + std::to_string(pos));
      m.set_documents(DocumentRules{eod, mask == 1, pos == 1, false});
      const std::vector<float> ref_a = test::full_logits(m, a), ref_b = test::full_logits(m, b);
      const test::CachedPair c = test::cached_logits(m, a, prompt, b);
      const double scale = test::max_abs(ref_a);
      EXPECT_LE(test::max_diff_from(c.a, ref_a, prompt - 1, V), 1e-5 * scale);
      EXPECT_LE(test::max_diff_from(c.b, ref_b, 0, V), 1e-5 * scale);
      if (mask || pos) {
        EXPECT_GT(test::max_diff_from(ref_a, plain, 5, V), 1e-3 * scale);
      }
    }
}

TEST(KvCache, RefusesWhatItCannotHold) {
  LlamaModel m(small_model(), DType::F32);
  m.init_weights(1);
  try {
    m.make_kv_cache(1, 65);
    ADD_FAILURE() << "a cache longer than max_seq_len";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 to model.max_seq_len (64) positions"), std::string::npos) << e.what();
  }
  KvCache c = m.make_kv_cache(1, 4);
  const std::vector<int32_t> t = {1, 2, 3, 4};
  m.prefill(c, 0, t.data(), 4);
  try {
    m.decode(c, {0}, {5});
    ADD_FAILURE() << "a decode past the cache's capacity";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the KV cache is full (4 positions)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llamatron
