// The stability guards, with faults injected into a step: a NaN step is skipped (nothing about the
// parameters or Adam changes) and counted, max_bad_steps in a row stop the run; a loss spike is
// logged, skipped or stops the run as train.anomaly_action says.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "llamatron/errors.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace {

RunConfig tiny(const std::string& action = "log") {
  RunConfig c;
  c.model.vocab_size = 64, c.model.dim = 32, c.model.n_layers = 1, c.model.n_heads = 2, c.model.n_kv_heads = 2;
  c.model.ffn_dim = 64, c.model.max_seq_len = 16;
  c.train.steps = 50, c.train.micro_batch_size = 2, c.train.seq_length = 16, c.train.threads = 1;
  c.train.max_bad_steps = 3, c.train.anomaly_window = 4, c.train.spike_factor = 3.0, c.train.anomaly_action = action;
  return c;
}

std::vector<char> snapshot(Trainer& t) {
  const Tensor& p = t.model().params().params_flat();
  std::vector<char> b(p.nbytes());
  std::memcpy(b.data(), p.raw(), b.size());
  return b;
}

TEST(Guards, NanStepIsSkippedAndCounted) {
  Trainer t(tiny());
  for (int i = 0; i < 3; ++i) t.step();
  const std::vector<char> before = snapshot(t);
  t.inject_next_step(std::numeric_limits<double>::quiet_NaN());
  const StepStats s = t.step();
  EXPECT_TRUE(s.skipped);
  EXPECT_EQ(s.bad_steps, 1);
  EXPECT_EQ(s.anomaly, "NaN/Inf loss or gradient");
  EXPECT_EQ(snapshot(t), before) << "no update";
  EXPECT_EQ(t.optimizer().steps_taken(), 3) << "Adam's step count unchanged";
  const StepStats next = t.step();
  EXPECT_FALSE(next.skipped);
  EXPECT_TRUE(std::isfinite(next.loss));
  EXPECT_NE(snapshot(t), before);
}

TEST(Guards, TooManyNanStepsInARowStop) {
  Trainer t(tiny());
  t.step();
  for (int i = 0; i < 2; ++i) {
    t.inject_next_step(std::numeric_limits<double>::infinity());
    EXPECT_TRUE(t.step().skipped);
  }
  t.inject_next_step(std::numeric_limits<double>::quiet_NaN());
  try {
    t.step();
    ADD_FAILURE() << "the third bad step in a row did not stop the run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.max_bad_steps"), std::string::npos) << e.what();
  }
}

TEST(Guards, LossSpikeFollowsTheAction) {
  for (const std::string action : {"log", "skip", "stop"}) {
    SCOPED_TRACE(action);
    Trainer t(tiny(action));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(t.step().anomaly, "");  // fills the window of 4
    const std::vector<char> before = snapshot(t);
    t.inject_next_step(10.0);  // 10x the loss and gradients: a spike
    if (action == "stop") {
      EXPECT_THROW(t.step(), Error);
      continue;
    }
    const StepStats s = t.step();
    EXPECT_NE(s.anomaly.find("loss spike"), std::string::npos) << s.anomaly;
    EXPECT_EQ(s.skipped, action == "skip");
    EXPECT_EQ(snapshot(t) == before, action == "skip");
  }
}

}  // namespace
}  // namespace llamatron
