// Training end to end (in process): learning reaches the synthetic data's entropy floor,
// runs are bit-reproducible, and gradient accumulation equals one big batch.
#include <gtest/gtest.h>

#include <cstring>

#include "llamatron/trainer.h"

namespace llamatron {
namespace {

RunConfig tiny(std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"model.vocab_size=64", "model.dim=64", "model.n_layers=2", "model.n_heads=4",
                                   "model.n_kv_heads=2", "model.ffn_dim=160", "model.max_seq_len=64",
                                   "train.micro_batch_size=16", "train.seq_length=32", "train.steps=150", "optimizer.lr=0.01",
                                   "schedule.min_lr=0.001", "schedule.warmup_steps=10", "data.markov_branching=4"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return parse_config("{}", sets);
}

// The best possible loss is the chain's entropy floor; a model that learned the chain gets
// within 0.1 nats of it on fresh data (the bound).
TEST(Training, ReachesTheEntropyFloor) {
  const RunConfig cfg = tiny();
  Trainer trainer(cfg);
  trainer.run([](const StepStats&) {});
  MarkovSource held_out(cfg.model.vocab_size, cfg.data.markov_order, cfg.data.markov_branching, cfg.data.markov_seed, 999);
  const double floor = held_out.entropy_floor(cfg.train.seq_length);
  const double loss = trainer.evaluate(held_out, 8);
  EXPECT_LT(loss, floor + 0.1) << "floor " << floor;
  EXPECT_GT(loss, floor - 0.05) << "below the floor: the floor or the loss is wrong";
}

std::vector<double> losses(const RunConfig& cfg) {
  Trainer t(cfg);
  std::vector<double> out;
  t.run([&](const StepStats& s) { out.push_back(s.loss); });
  return out;
}

TEST(Training, SameSeedSameConfigBitIdenticalLosses) {
  for (const char* prec : {"bf16", "fp32"}) {
    const RunConfig cfg = tiny({"train.steps=8", std::string("train.precision=") + prec, "train.grad_accum_steps=2"});
    const auto a = losses(cfg), b = losses(cfg);
    ASSERT_EQ(a.size(), 8u);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(double))) << prec;
    const auto c = losses(tiny({"train.steps=8", std::string("train.precision=") + prec, "train.seed=1"}));
    EXPECT_NE(a, c) << "a different seed must change the run";
  }
}

// Two micro-batches of 4 give the gradient of one batch of 8 (fp32: equal up to summation order).
TEST(Training, GradientAccumulationEqualsOneBigBatch) {
  const RunConfig cfg = tiny({"train.precision=fp32"});
  LlamaModel big(cfg.model, DType::F32), acc(cfg.model, DType::F32);
  big.init_weights(3);
  acc.init_weights(3);
  MarkovSource src(cfg.model.vocab_size, 1, 4, 1, 5);
  const int64_t T = 32;
  std::vector<int32_t> tokens(8 * (T + 1));
  src.next_batch(8, T, tokens.data());
  big.params().zero_grads();
  acc.params().zero_grads();
  const float scale = 1.0f / (8 * T);
  const double l_big = big.forward_backward(tokens.data(), 8, T, scale);
  const double l_acc = acc.forward_backward(tokens.data(), 4, T, scale) +
                       acc.forward_backward(tokens.data() + 4 * (T + 1), 4, T, scale);
  EXPECT_NEAR(l_big, l_acc, 1e-5 * l_big);
  const Tensor& g1 = big.params().grads_flat();
  const Tensor& g2 = acc.params().grads_flat();
  double err = 0, scale_g = 0;
  for (int64_t i = 0; i < g1.numel(); ++i) {
    err = std::max(err, static_cast<double>(std::abs(g1.data<float>()[i] - g2.data<float>()[i])));
    scale_g = std::max(scale_g, static_cast<double>(std::abs(g1.data<float>()[i])));
  }
  EXPECT_LE(err, 1e-5 * scale_g);
}

}  // namespace
}  // namespace llamatron
