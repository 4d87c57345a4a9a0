// The (interleaved) 1F1B order of include/llamatron/pipeline.h, checked without MPI: each stage's
// order is replayed on a model of the pipeline written here (a forward needs the previous virtual
// stage's forward of its micro-batch, a backward the next one's backward; a stage runs its order
// one op at a time), which must finish (no stage waits on one that waits on it) with the idle
// share of stage 0 the formula says: (p - 1) / (v M + p - 1) when a chunk's forward costs 1 / v
// and its backward 2 / v.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "llamatron/pipeline.h"

namespace llamatron {
namespace {

struct Shape {
  int p, v;
  int64_t M;
};

// Replays every stage's order; returns stage 0's idle share, or -1 if the stages deadlock.
double replay(const Shape& s) {
  std::vector<std::vector<PipelineOp>> order;
  for (int r = 0; r < s.p; ++r) order.push_back(pipeline_schedule(s.p, r, s.v, s.M));
  std::map<std::tuple<bool, int, int64_t>, double> finished;  // (forward, virtual stage, micro-batch) -> time
  std::vector<size_t> next(s.p, 0);
  std::vector<double> clock(s.p, 0), busy(s.p, 0);
  const int last = s.p * s.v - 1;
  for (bool moved = true; moved;) {
    moved = false;
    for (int r = 0; r < s.p; ++r) {
      if (next[r] == order[r].size()) continue;
      const PipelineOp& op = order[r][next[r]];
      const int vs = op.chunk * s.p + r;
      double ready = 0;
      if (op.forward ? vs > 0 : true) {
        const auto dep = op.forward ? std::make_tuple(true, vs - 1, op.micro_batch)
                                    : (vs < last ? std::make_tuple(false, vs + 1, op.micro_batch) : std::make_tuple(true, vs, op.micro_batch));
        const auto it = finished.find(dep);
        if (it == finished.end()) continue;
        ready = it->second;
      }
      const double cost = (op.forward ? 1.0 : 2.0) / s.v;
      clock[r] = std::max(clock[r], ready) + cost, busy[r] += cost;
      finished[{op.forward, vs, op.micro_batch}] = clock[r];
      ++next[r], moved = true;
    }
  }
  for (int r = 0; r < s.p; ++r)
    if (next[r] != order[r].size()) return -1;
  return 1 - busy[0] / *std::max_element(clock.begin(), clock.end());
}

TEST(PipelineSchedule, EachChunkAndMicroBatchOnceForwardThenBackward) {
  for (const Shape s : {Shape{2, 1, 3}, Shape{4, 1, 8}, Shape{2, 2, 4}, Shape{4, 2, 8}, Shape{3, 3, 6}}) {
    for (int r = 0; r < s.p; ++r) {
      std::set<std::pair<int, int64_t>> forwarded, backwarded;
      for (const PipelineOp& op : pipeline_schedule(s.p, r, s.v, s.M)) {
        const auto key = std::make_pair(op.chunk, op.micro_batch);
        if (op.forward) {
          EXPECT_TRUE(forwarded.insert(key).second);
        } else {
          EXPECT_TRUE(forwarded.count(key)) << "a backward before its forward";
          EXPECT_TRUE(backwarded.insert(key).second);
        }
      }
      EXPECT_EQ(forwarded.size(), static_cast<size_t>(s.v * s.M));
      EXPECT_EQ(backwarded.size(), static_cast<size_t>(s.v * s.M));
    }
  }
}

// v = 1 is the classic 1F1B: stage r warms up with min(p - r - 1, M) forwards, then alternates.
TEST(PipelineSchedule, OneChunkIsPlainOneFOneB) {
  const std::vector<PipelineOp> ops = pipeline_schedule(4, 1, 1, 5);
  const std::vector<std::pair<bool, int64_t>> want = {{true, 0}, {true, 1},  {true, 2},  {false, 0}, {true, 3},
                                                      {false, 1}, {true, 4}, {false, 2}, {false, 3}, {false, 4}};
  ASSERT_EQ(ops.size(), want.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(ops[i].forward, want[i].first) << i;
    EXPECT_EQ(ops[i].micro_batch, want[i].second) << i;
    EXPECT_EQ(ops[i].chunk, 0);
  }
}

TEST(PipelineSchedule, NoDeadlockAndTheBubbleOfTheFormula) {
  for (const Shape s : {Shape{2, 1, 4}, Shape{4, 1, 8}, Shape{2, 2, 2}, Shape{2, 2, 4}, Shape{4, 2, 4}, Shape{4, 2, 8},
                        Shape{4, 4, 8}, Shape{3, 2, 6}, Shape{8, 2, 16}}) {
    const double idle = replay(s);
    ASSERT_GE(idle, 0) << "deadlock at p " << s.p << " v " << s.v << " M " << s.M;
    EXPECT_NEAR(idle, (s.p - 1.0) / (s.v * s.M + s.p - 1.0), 1e-12) << "p " << s.p << " v " << s.v << " M " << s.M;
  }
}

// The slots a stage needs are its most micro-batches in flight: plain 1F1B's stage r holds
// min(p - r, M). Interleaved, stage 0 of 4 with 2 chunks and 8 micro-batches warms up with 7
// forwards, then runs one more before its first backward: 8 in flight, each of half the layers, as
// many as plain 1F1B's 4 of all of them. Of chunk 0 alone all 8 are in flight (its forwards 4-7
// run with chunk 1's backwards 0-3); of the last stage's last chunk (the head), 1.
TEST(PipelineSchedule, SlotsAreTheMicroBatchesInFlight) {
  EXPECT_EQ(pipeline_in_flight(4, 0, 1, 8), 4);
  EXPECT_EQ(pipeline_in_flight(4, 3, 1, 8), 1);
  EXPECT_EQ(pipeline_in_flight(4, 0, 1, 2), 2);
  EXPECT_EQ(pipeline_in_flight(4, 0, 2, 8), 8);
  EXPECT_EQ(pipeline_in_flight(4, 0, 2, 8, 0), 8);
  EXPECT_EQ(pipeline_in_flight(4, 0, 2, 8, 1), 4);
  EXPECT_EQ(pipeline_in_flight(4, 3, 2, 8), 5);
  EXPECT_EQ(pipeline_in_flight(4, 3, 2, 8, 1), 1);
}

}  // namespace
}  // namespace llamatron
