// Batch-size ramp-up (train.rampup_batch_size): the sizes follow Megatron's rule (values worked out
// from its formula by hand), a ramped run trains exactly what fixed-batch runs resumed from
// checkpoints train, and a run resumed in the middle of the ramp is bit-identical.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "expect_error.h"
#include "llamatron/batch_ramp.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace {
namespace fs = std::filesystem;

BatchRamp ramp(std::vector<int64_t> r, int64_t global) {
  TrainConfig t;
  t.rampup_batch_size = std::move(r);
  return BatchRamp(t, global);
}

// Megatron: increments = (global - start) / incr, per = samples / increments (a double), and the
// batch after `consumed` samples is global if consumed > samples, else start + int(consumed / per) * incr.
TEST(BatchRamp, FollowsMegatronsRule) {
  // 100 samples over 3 increments: per = 33.33..., so the batch grows after samples 34 and 67.
  const BatchRamp a = ramp({16, 16, 100}, 64);
  EXPECT_TRUE(a.on());
  for (const auto& [consumed, batch] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 16}, {33, 16}, {34, 32}, {66, 32}, {67, 48}, {99, 48}, {100, 64}, {101, 64}, {1 << 20, 64}})
    EXPECT_EQ(a.global_batch_at(consumed), batch) << "after " << consumed << " samples";
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{16, 32, 48, 64}));
  // Megatron's GPT-3 175B example: --rampup-batch-size 16 16 5859375 --global-batch-size 1536
  // (95 increments of 61677.63 samples).
  const BatchRamp gpt3 = ramp({16, 16, 5859375}, 1536);
  for (const auto& [consumed, batch] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 16}, {61677, 16}, {61678, 32}, {123355, 32}, {123356, 48}, {5859374, 1520}, {5859375, 1536}})
    EXPECT_EQ(gpt3.global_batch_at(consumed), batch) << "after " << consumed << " samples";
  EXPECT_EQ(gpt3.sizes().size(), 96u);
  EXPECT_EQ(gpt3.describe(), "16 -> 1536 sequences (+16 every 61677.6 samples, over the first 5859375 samples)");
  // Off, and a ramp that starts at the full batch: one size.
  EXPECT_FALSE(ramp({}, 64).on());
  EXPECT_EQ(ramp({}, 64).global_batch_at(0), 64);
  EXPECT_FALSE(ramp({64, 8, 100}, 64).on());
  EXPECT_EQ(ramp({64, 8, 100}, 64).sizes(), (std::vector<int64_t>{64}));
}

TEST(BatchRamp, BadSettingsAreNamed) {
  expect_error([] { ramp({16, 16}, 64); }, "train.rampup_batch_size has 2 entries, not 3");
  expect_error([] { ramp({0, 16, 100}, 64); }, "needs a positive start, increment and ramp_samples");
  expect_error([] { ramp({16, 16, 0}, 64); }, "needs a positive start, increment and ramp_samples");
  expect_error([] { ramp({128, 16, 100}, 64); }, "starts at 128 sequences, above the global batch of 64");
  expect_error([] { ramp({16, 10, 100}, 64); }, "grows by 10 from 16, which never reaches the global batch of 64");
  // Each size must be whole micro-batches, in groups of pp when interleaved.
  EXPECT_EQ(ramp({16, 16, 100}, 64).first_unfit(16, 1), 0);
  EXPECT_EQ(ramp({8, 8, 100}, 64).first_unfit(16, 1), 8);
  EXPECT_EQ(ramp({16, 16, 100}, 64).first_unfit(8, 4), 16);  // 2 micro-batches, not a group of 4
  EXPECT_EQ(ramp({32, 32, 100}, 96).first_unfit(32, 1), 0);
  EXPECT_EQ(ramp({32, 32, 100}, 96).first_unfit(64, 1), 32);
  EXPECT_EQ(ramp({64, 32, 100}, 128).first_unfit(64, 1), 96);  // the second size
  EXPECT_EQ(ramp({}, 96).first_unfit(64, 1), 96);              // no ramp: the full batch
  // A hostile ramp of 2^40 sizes is decided without listing them.
  EXPECT_EQ(ramp({1, 1, 1 << 20}, int64_t{1} << 40).first_unfit(4, 1), 1);
  EXPECT_EQ(ramp({4, 4, 1 << 20}, int64_t{1} << 40).first_unfit(4, 1), 0);
  // The trainer checks them against its layout before it allocates anything.
  expect_error([] { Trainer t(parse_config("{}", {"train.micro_batch_size=4", "train.global_batch_size=16", "train.rampup_batch_size=2,2,8"})); },
               "train.rampup_batch_size passes through a global batch of 2 sequences, which is not a multiple of "
               "train.micro_batch_size x data-parallel ranks (4)");
  expect_error([] { parse_config("{}", {"train.global_batch_size=16", "train.rampup_batch_size=4,5,8"}); },
               "grows by 5 from 4");
}

RunConfig tiny(const std::string& precision, std::vector<std::string> extra) {
  // A constant LR after warm-up: the fixed-batch runs below end at other train.steps, and a decaying
  // schedule would depend on it.
  std::vector<std::string> sets = {"model.vocab_size=64", "model.dim=32", "model.n_layers=2", "model.n_heads=4",
                                   "model.n_kv_heads=2", "model.ffn_dim=96", "model.max_seq_len=32", "train.seq_length=16",
                                   "train.micro_batch_size=2", "optimizer.lr=0.01", "schedule.decay_style=constant",
                                   "schedule.warmup_steps=3", "train.precision=" + precision, "logging.log_every=100"};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return parse_config("{}", sets);
}

struct RunRecord {
  std::vector<double> losses;
  std::vector<int64_t> batches;
  int64_t position = 0;
};

RunRecord train(const RunConfig& cfg) {
  Trainer t(cfg);
  RunRecord r;
  t.run([&](const StepStats& s) { r.losses.push_back(s.loss), r.batches.push_back(s.global_batch_size); });
  r.position = t.data_position();
  return r;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / "llamatron_test_ramp" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// [2, 2, 12] towards 8: batches 2, 2, 4, 6, then 8. The same steps from fixed-batch runs, each
// resumed from the last one's checkpoint with the next batch size: the same samples, micro-batches,
// optimizer state and LR, so the same bits.
TEST(BatchRamp, TrainsWhatFixedBatchRunsResumedFromCheckpointsTrain) {
  for (const char* prec : {"fp32", "bf16"}) {
    const RunRecord ramped = train(tiny(prec, {"train.steps=7", "train.global_batch_size=8", "train.rampup_batch_size=2,2,12"}));
    EXPECT_EQ(ramped.batches, (std::vector<int64_t>{2, 2, 4, 6, 8, 8, 8})) << prec;
    EXPECT_EQ(ramped.position, 2 + 2 + 4 + 6 + 8 + 8 + 8);
    const fs::path dir = fresh_dir(std::string("fixed_") + prec);
    RunRecord fixed;
    for (const auto& [steps, batch] : std::vector<std::pair<int, int>>{{2, 2}, {3, 4}, {4, 6}, {7, 8}}) {
      const RunRecord part = train(tiny(prec, {"train.steps=" + std::to_string(steps), "train.global_batch_size=" + std::to_string(batch),
                                         "checkpoint.dir=" + dir.string()}));
      fixed.losses.insert(fixed.losses.end(), part.losses.begin(), part.losses.end());
      fixed.position = part.position;
    }
    ASSERT_EQ(fixed.losses.size(), ramped.losses.size()) << prec;
    EXPECT_EQ(0, std::memcmp(fixed.losses.data(), ramped.losses.data(), fixed.losses.size() * sizeof(double))) << prec;
    EXPECT_EQ(fixed.position, ramped.position);
  }
}

TEST(BatchRamp, ResumedInTheMiddleOfTheRampIsBitIdentical) {
  for (const char* prec : {"fp32", "bf16"}) {
    const std::vector<std::string> ramp_sets = {"train.global_batch_size=8", "train.rampup_batch_size=2,2,12"};
    auto with = [&](std::vector<std::string> more) {
      more.insert(more.end(), ramp_sets.begin(), ramp_sets.end());
      return tiny(prec, more);
    };
    const RunRecord whole = train(with({"train.steps=6"}));
    const fs::path dir = fresh_dir(std::string("resume_") + prec);
    const RunRecord first = train(with({"train.steps=3", "checkpoint.dir=" + dir.string()}));  // stops after the batch of 4
    const RunRecord rest = train(with({"train.steps=6", "checkpoint.dir=" + dir.string()}));
    EXPECT_EQ(rest.batches, (std::vector<int64_t>{6, 8, 8})) << prec;
    std::vector<double> joined = first.losses;
    joined.insert(joined.end(), rest.losses.begin(), rest.losses.end());
    ASSERT_EQ(joined.size(), whole.losses.size());
    EXPECT_EQ(0, std::memcmp(joined.data(), whole.losses.data(), joined.size() * sizeof(double))) << prec;
  }
}

}  // namespace
}  // namespace llamatron
