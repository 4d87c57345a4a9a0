// The pieces behind recovery and the log's health checks, on hand-written inputs: the layout an
// elastic restart continues with (elastic.h), the straggler detector (stragglers.h) and the
// watchdog's deadline (watchdog.h). The runs on simulated hosts are tests/multinode/*.sh.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "llamatron/elastic.h"
#include "llamatron/errors.h"
#include "llamatron/stragglers.h"
#include "llamatron/watchdog.h"

namespace llamatron {
namespace {

RunConfig tp2_global12() {
  RunConfig c;
  c.parallel.tensor_parallel = 2;
  c.train.micro_batch_size = 1;
  c.train.global_batch_size = 12;
  return c;
}

TEST(Elastic, DropsDataParallelRanksAndKeepsTheGlobalBatch) {
  // tp2 x dp4 on 4 hosts of 2; one host lost: tp2 x dp3, 4 micro-batches of 3 x 1 instead of 3 of 4.
  const ElasticLayout l = elastic_layout(tp2_global12(), 8, {{"a", 2}, {"b", 2}, {"d", 2}});
  EXPECT_EQ(l.ranks, 6);
  EXPECT_EQ(l.data_parallel, 3);
  EXPECT_EQ(l.grad_accum_steps, 4);
  EXPECT_EQ(l.global_batch_size, 12);
  ASSERT_EQ(l.hosts.size(), 3u);
  EXPECT_EQ(l.hosts[2].host, "d");
  EXPECT_EQ(l.hosts[2].slots, 2);
}

TEST(Elastic, KeepsTensorParallelGroupsInsideHosts) {
  // Hosts of 3 slots hold one TP group of 2 each; 5 data-parallel ranks would not divide 12, so 4.
  const ElasticLayout l = elastic_layout(tp2_global12(), 8, {{"a", 3}, {"b", 3}, {"c", 3}, {"d", 3}, {"e", 3}});
  EXPECT_EQ(l.ranks, 8);
  EXPECT_EQ(l.data_parallel, 4);
  EXPECT_EQ(l.grad_accum_steps, 3);
  for (const HostSlots& h : l.hosts) EXPECT_EQ(h.slots % 2, 0) << h.host;
}

TEST(Elastic, EverySizeOfABatchRampFitsTheNewLayout) {
  // 12 over dp 3 would do, but the ramp's first size of 2 does not divide over 3 ranks: dp 2.
  RunConfig c = tp2_global12();
  c.train.rampup_batch_size = {2, 2, 100};
  const ElasticLayout l = elastic_layout(c, 8, {{"a", 2}, {"b", 2}, {"d", 2}});
  EXPECT_EQ(l.data_parallel, 2);
  EXPECT_EQ(l.grad_accum_steps, 6);
}

TEST(Elastic, GlobalBatchFromGradientAccumulationWhenNotGiven) {
  RunConfig c = tp2_global12();
  c.train.global_batch_size = 0, c.train.grad_accum_steps = 3, c.train.micro_batch_size = 2;  // 2 x 3 x dp 4 = 24
  const ElasticLayout l = elastic_layout(c, 8, {{"a", 2}, {"b", 2}});
  EXPECT_EQ(l.global_batch_size, 24);
  EXPECT_EQ(l.data_parallel, 2);
  EXPECT_EQ(l.grad_accum_steps, 6);
}

TEST(Elastic, NoLayoutIsAnErrorSayingWhy) {
  RunConfig c = tp2_global12();
  c.parallel.tensor_parallel = 4;
  try {
    elastic_layout(c, 8, {{"a", 2}, {"b", 2}});  // no host holds a TP group of 4
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no layout fits the remaining hosts"), std::string::npos) << e.what();
  }
}

TEST(Stragglers, NamesTheSlowRankAndItsHostAgainstItsStagesMedian) {
  // pp 2 (stage = rank / 2): stage 1 is slower as a whole (the LM head), which is not straggling.
  const std::vector<RankTimes> t = {{100, 5}, {105, 4}, {200, 9}, {198, 8}};
  EXPECT_EQ(find_stragglers(t, {0, 0, 1, 1}, {"a", "a", "b", "b"}, 1.3), "");
  const std::vector<RankTimes> slow = {{100, 50}, {102, 48}, {98, 52}, {400, 1}};
  const std::string s = find_stragglers(slow, {0, 0, 0, 0}, {"a", "b", "c", "d"}, 1.3);
  EXPECT_EQ(s, "rank 3 on d: compute 400 ms, 4.0x the median 101 ms of pipeline stage 0 (waits 1 ms)");
  EXPECT_EQ(find_stragglers(slow, {0, 0, 0, 0}, {}, 0), "");  // off
}

TEST(WatchdogDeathTest, APassedDeadlineEndsTheProcessNamingTheWait) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        watchdog::configure(0.2, 1);
        watchdog::set_step(7);
        const watchdog::Watch w([] { return std::string("tp.all_reduce on group tp"); });
        std::this_thread::sleep_for(std::chrono::seconds(5));
      },
      ::testing::ExitedWithCode(watchdog::kExitCode), "watchdog: rank 0 on .* waited 0 s .* in step 7 for tp.all_reduce on group tp");
}

TEST(Watchdog, AWaitThatEndsInTimeIsNotReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        watchdog::configure(0.5, 1);
        for (int i = 0; i < 10; ++i) {
          const watchdog::Watch w([] { return std::string("a quick wait"); });
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace llamatron
