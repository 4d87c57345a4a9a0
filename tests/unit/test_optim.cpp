// AdamW's weight-decay mask, checked analytically: with zero gradients Adam's update is exactly 0
// (m = v = 0), so one step multiplies decayed parameters by (1 - lr * wd) and leaves the others.
#include <gtest/gtest.h>

#include "llamatron/model.h"
#include "llamatron/optim.h"

namespace llamatron {
namespace {

void check_decay_mask(bool decay_embeddings) {
  ModelConfig m;
  m.vocab_size = 32, m.dim = 16, m.n_layers = 1, m.n_heads = 2, m.n_kv_heads = 1, m.ffn_dim = 24;
  LlamaModel model(m, DType::F32);
  model.init_weights(1);
  ParamStore& ps = model.params();
  std::map<std::string, std::vector<float>> before;
  for (const ParamSpec& s : ps.specs()) {
    const Tensor t = ps.master(s.name);
    before[s.name].assign(t.data<float>(), t.data<float>() + t.numel());
  }
  OptimConfig oc;
  oc.lr = 0.5, oc.weight_decay = 0.1, oc.decay_embeddings = decay_embeddings;
  ps.zero_grads();
  AdamW(ps, oc).step(oc.lr);
  for (const ParamSpec& s : ps.specs()) {
    const bool decayed = !s.is_norm && (!s.is_embedding || decay_embeddings);
    const float factor = decayed ? 1.0f - 0.5f * 0.1f : 1.0f;
    const Tensor t = ps.master(s.name);
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.data<float>()[i], before[s.name][i] * factor) << s.name;
  }
}

TEST(AdamWDecay, NormsNeverEmbeddingsWhenConfigured) {
  check_decay_mask(true);
  check_decay_mask(false);
}

}  // namespace
}  // namespace llamatron
