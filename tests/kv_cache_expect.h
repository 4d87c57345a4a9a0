// Shared by tests/unit/test_model.cpp (CPU) and tests/emu/test_backend.cpp (the emulated device):
// generation's cached logits (LlamaModel::prefill, then decode one token at a time) against the
// logits of one full forward over the same tokens.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "llamatron/model.h"

namespace llamatron::test {

// The logits [T, V] (fp32, host) of one full forward of `tokens` (T of them) on `model`.
inline std::vector<float> full_logits(LlamaModel& model, std::vector<int32_t> tokens) {
  const auto T = static_cast<int64_t>(tokens.size());
  tokens.push_back(0);  // a target for the last position
  model.keep_logits(true);
  model.forward_loss(tokens.data(), 1, T);
  model.keep_logits(false);
  Tensor l = Tensor::empty(model.last_logits().shape(), DType::F32);
  l.copy_from(model.last_logits());
  const int64_t V = model.config().vocab_size, rows = l.dim(1);
  std::vector<float> out;
  for (int64_t t = 0; t < T; ++t) out.insert(out.end(), l.data<float>() + t * rows, l.data<float>() + t * rows + V);
  return out;
}

// Two sequences in one cache: a prompts the first `prompt_a` tokens of a, then decodes the rest
// one by one; b (prefilled with its first token) decodes alongside it in the same batched decode
// calls, at other positions. Returns, for each, the logits [T, V] of positions prompt - 1 .. T - 1
// laid out at their positions (rows before prompt - 1 are zero).
struct CachedPair {
  std::vector<float> a, b;
};
inline CachedPair cached_logits(LlamaModel& model, const std::vector<int32_t>& a, int64_t prompt_a, const std::vector<int32_t>& b) {
  const int64_t V = model.config().vocab_size, T = static_cast<int64_t>(a.size());
  CachedPair out{std::vector<float>(T * V, 0.f), std::vector<float>(T * V, 0.f)};
  KvCache cache = model.make_kv_cache(2, T);
  std::vector<float> la = model.prefill(cache, 0, a.data(), prompt_a), lb = model.prefill(cache, 1, b.data(), 1);
  std::copy(la.begin(), la.end(), out.a.begin() + (prompt_a - 1) * V);
  std::copy(lb.begin(), lb.end(), out.b.begin());
  for (int64_t t = 1; t < T; ++t) {
    std::vector<int64_t> rows;
    std::vector<int32_t> feed;
    if (t >= prompt_a) rows.push_back(0), feed.push_back(a[t]);
    rows.push_back(1), feed.push_back(b[t]);
    const std::vector<float> l = model.decode(cache, rows, feed);
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy(l.begin() + r * V, l.begin() + (r + 1) * V, (rows[r] == 0 ? out.a : out.b).begin() + t * V);
  }
  EXPECT_EQ(cache.length[0], T);
  EXPECT_EQ(cache.length[1], T);
  return out;
}

// max |x - y| over rows [from, T) of [T, V] logits.
inline double max_diff_from(const std::vector<float>& x, const std::vector<float>& y, int64_t from, int64_t V) {
  double m = 0;
  for (size_t i = static_cast<size_t>(from * V); i < x.size(); ++i) m = std::max(m, std::abs(double(x[i]) - double(y[i])));
  return m;
}
inline double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, std::abs(double(v)));
  return m;
}

}  // namespace llamatron::test
