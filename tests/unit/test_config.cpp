// Config parsing and validation: every bad relation is rejected with a message naming it.
#include <gtest/gtest.h>

#include "llamatron/config.h"
#include "llamatron/errors.h"
#include "llamatron/optim.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace {

// Expects parse_config to throw an Error whose message contains `needle`.
void expect_rejected(const std::string& yaml, const std::vector<std::string>& sets, const std::string& needle) {
  try {
    parse_config(yaml, sets);
    ADD_FAILURE() << "accepted: " << yaml;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "message must be one line";
  }
}

TEST(Config, ParsesSectionsAndOverrides) {
  const RunConfig c = parse_config("model: {dim: 64, n_heads: 4, n_kv_heads: 2}\ntrain: {steps: 7}\ndata: {paths: [a, b]}",
                                   {"optimizer.lr=0.01", "model.tie_embeddings=true"});
  EXPECT_EQ(c.model.dim, 64);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.01);
  EXPECT_TRUE(c.model.tie_embeddings);
  EXPECT_EQ(c.data.paths, (std::vector<std::string>{"a", "b"}));
}

TEST(Config, RejectsBadInput) {
  expect_rejected("model: {dimm: 64}", {}, "unknown config key 'model.dimm'");
  expect_rejected("{}", {"train.stepz=3"}, "unknown config key 'train.stepz'");
  expect_rejected("{}", {"train.steps"}, "key=value");
  expect_rejected("model: {dim: 100, n_heads: 3}", {}, "divisible by n_heads");
  expect_rejected("model: {dim: 64, n_heads: 4, n_kv_heads: 3}", {}, "multiple of n_kv_heads");
  expect_rejected("model: {dim: 12, n_heads: 4, n_kv_heads: 4}", {}, "even");
  expect_rejected("model: {max_seq_len: 32}\ntrain: {seq_length: 64}", {}, "exceeds model.max_seq_len");
  expect_rejected("train: {steps: ten}", {}, "expects an integer");
  expect_rejected("schedule: {decay_style: exponential}", {}, "schedule.decay_style must be");
  expect_rejected("train: {recompute: some}", {}, "train.recompute must be none, selective or full");
  expect_rejected("logging: {progress: maybe}", {}, "logging.progress must be");
  expect_rejected("train: {precision: fp16}", {}, "precision");
  expect_rejected("data: {source: llmc}", {}, "data.paths is empty");
  expect_rejected("model: [1, 2", {}, "not valid YAML");
  expect_rejected("hello world", {}, "mapping of sections");
  expect_rejected("model: [1, 2]", {}, "not inside a section");
  expect_rejected("model: {dim: {a: [1, {b: 2}]}}", {}, "takes a value");
  expect_rejected("data: {paths: [[a]]}", {}, "list of plain values");
  // Context parallelism: 2c equal chunks, the CPU backend, SP's chunks of each rank's positions.
  expect_rejected("parallel: {context_parallel: 3}\ntrain: {seq_length: 64}", {}, "divisible by 2 x parallel.context_parallel (6)");
  expect_rejected("parallel: {context_parallel: 2, tensor_parallel: 4, sequence_parallel: true}\n"
                  "model: {dim: 64, n_heads: 4, n_kv_heads: 4, ffn_dim: 96}\ntrain: {seq_length: 20}", {},
                  "10 positions must be divisible by parallel.tensor_parallel (4)");
  expect_rejected("parallel: {context_parallel: 2}\nlogging: {gns: true}", {}, "logging.gns with parallel.context_parallel");
  expect_rejected("parallel: {context_parallel: 0}", {}, "parallel.context_parallel must be >= 1");
}

// An unknown key names the valid one it most likely meant: typos, a key in the wrong section, and
// Megatron's / Hugging Face's names for our settings.
TEST(Config, UnknownKeySuggestsNearest) {
  expect_rejected("model: {dimm: 64}", {}, "did you mean 'model.dim'?");
  expect_rejected("{}", {"train.stepz=3"}, "did you mean 'train.steps'?");
  expect_rejected("train: {micro_batchsize: 2}", {}, "did you mean 'train.micro_batch_size'?");
  expect_rejected("train: {lr: 0.1}", {}, "did you mean 'optimizer.lr'?");
  expect_rejected("optimizer: {min_lr: 0.1}", {}, "did you mean 'schedule.min_lr'?");
  expect_rejected("train: {batch_size: 2}", {}, "did you mean 'train.micro_batch_size'?");
  expect_rejected("model: {hidden_size: 2}", {}, "did you mean 'model.dim'?");
  expect_rejected("parallel: {tensor_model_parallel_size: 2}", {}, "did you mean 'parallel.tensor_parallel'?");
  expect_rejected("schedule: {lr_decay_style: cosine}", {}, "did you mean 'schedule.decay_style'?");
  expect_rejected("optim: {lr: 0.1}", {}, "did you mean 'optimizer.lr'?");
  expect_rejected("train: {qqqqqqqqqqqqqqqq: 1}", {}, "the sections are model, parallel, train, optimizer");
}

// The resolved config written out reads back to the same values, key for key.
TEST(Config, ResolvedConfigRoundTrips) {
  const RunConfig c = parse_config("model: {dim: 64, n_heads: 4, n_kv_heads: 2}\ndata: {source: llmc, paths: [a, b], weights: [0.3, 0.7]}",
                                   {"schedule.decay_style=wsd", "train.recompute=full", "logging.progress=never",
                                    "parallel.pipeline_layers=1,1", "parallel.pipeline_parallel=2", "optimizer.lr=0.00123"});
  EXPECT_EQ(config_values(parse_config(config_to_yaml(c))), config_values(c));
  EXPECT_EQ(c.train.recompute, "full");
  EXPECT_EQ(c.schedule.decay_style, "wsd");
}

// train.global_batch_size fixes the micro-batch count; a grad_accum_steps the config also names
// (a resolved config names both) must agree with it, 1 included.
TEST(Config, GlobalBatchAndAccumulationMustAgree) {
  const std::string base = "model: {dim: 32, n_heads: 2, n_kv_heads: 2, ffn_dim: 64, max_seq_len: 16, vocab_size: 64}\n";
  const RunConfig derived = parse_config(base + "train: {global_batch_size: 8, micro_batch_size: 2, seq_length: 16, threads: 1}");
  Trainer t(derived);
  EXPECT_EQ(t.config().train.grad_accum_steps, 4);
  Trainer again(parse_config(config_to_yaml(t.config())));  // the resolved config: both keys, agreeing
  EXPECT_EQ(again.config().train.grad_accum_steps, 4);
  for (const char* accum : {"1", "3"}) {
    try {
      Trainer bad(parse_config(base + "train: {global_batch_size: 8, micro_batch_size: 2, seq_length: 16, threads: 1}",
                               {std::string("train.grad_accum_steps=") + accum}));
      ADD_FAILURE() << "grad_accum_steps " << accum << " with a global batch of 4 micro-batches was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("set one of global_batch_size and grad_accum_steps"), std::string::npos) << e.what();
    }
  }
}

// Meta's rule: hidden = multiple_of * ceil(multiplier * (2/3 * 4 * dim) / multiple_of).
TEST(Config, FfnDimFollowsMetasRule) {
  ModelConfig m;
  m.dim = 4096, m.multiple_of = 256, m.ffn_dim_multiplier = 1.0;
  EXPECT_EQ(m.resolved_ffn_dim(), 11008);  // LLaMA-7B
  m.dim = 4096, m.multiple_of = 1024, m.ffn_dim_multiplier = 1.3;
  EXPECT_EQ(m.resolved_ffn_dim(), 14336);  // Llama-3-8B
  m.ffn_dim = 1408;
  EXPECT_EQ(m.resolved_ffn_dim(), 1408);   // explicit wins
}

TEST(LrSchedule, WarmupThenShape) {
  ScheduleConfig c;
  c.min_lr = 0.1, c.warmup_steps = 10;
  c.decay_style = "cosine";
  EXPECT_DOUBLE_EQ(lr_at(1.0, c, 0, 110), 0.1);   // (0+1)/10
  EXPECT_DOUBLE_EQ(lr_at(1.0, c, 9, 110), 1.0);
  EXPECT_NEAR(lr_at(1.0, c, 60, 110), 0.55, 1e-12);  // halfway: (lr + min_lr) / 2
  EXPECT_NEAR(lr_at(1.0, c, 110, 110), 0.1, 1e-12);
  c.decay_style = "linear";
  EXPECT_NEAR(lr_at(1.0, c, 60, 110), 0.55, 1e-12);
  c.decay_style = "constant";
  EXPECT_DOUBLE_EQ(lr_at(1.0, c, 100, 110), 1.0);
  c.decay_style = "wsd";
  c.decay_fraction = 0.2;  // decay over the last 22 of 110 steps
  EXPECT_DOUBLE_EQ(lr_at(1.0, c, 87, 110), 1.0);
  EXPECT_NEAR(lr_at(1.0, c, 98, 110), 1.0 + (0.1 - 1.0) * 11.0 / 22.0, 1e-12);
  EXPECT_NEAR(lr_at(1.0, c, 109, 110), 0.1, 1e-12);
}

}  // namespace
}  // namespace llamatron
