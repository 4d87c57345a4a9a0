// kernels/cross_entropy.cu, run by the emulator, against the CPU ops: the fused loss + gradient
// (also in place), the vocab-sharded path recombined on the host, and the embedding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/cross_entropy.cuh"
#include "ops/cpu/cpu_ops.h"
#include "tests/emu/kernel_test_util.h"

namespace llamatron::test {
namespace {

constexpr int kIgnore = -100;

std::vector<int32_t> targets_for(int rows, int v) {
  std::vector<int32_t> t(rows);
  for (int r = 0; r < rows; ++r) t[r] = r % 3 == 1 ? kIgnore : (r * 7919) % v;  // every third row ignored
  return t;
}

// CPU reference, one row at a time, to get each row's loss.
void cpu_reference(const std::vector<bf16>& logits, const std::vector<int32_t>& targets, int rows, int v, float scale,
                   std::vector<double>& losses, std::vector<bf16>& dlogits) {
  losses.assign(rows, 0.0);
  dlogits.resize(logits.size());
  for (int r = 0; r < rows; ++r)
    losses[r] = cpu::cross_entropy_fwd_bwd<bf16>(logits.data() + static_cast<size_t>(r) * v, targets.data() + r,
                                                 dlogits.data() + static_cast<size_t>(r) * v, 1, v, kIgnore, scale);
}

TEST(CrossEntropyKernel, FusedMatchesCpuReferenceAlsoInPlace) {
  for (auto [rows, v] : {std::pair{5, 7}, {33, 101}, {17, 1000}, {4, 8192}}) {
    const auto logits = random_bf16(static_cast<size_t>(rows) * v, 1, 2.0f);
    const auto targets = targets_for(rows, v);
    const float scale = 1.0f / rows;
    std::vector<double> loss_ref;
    std::vector<bf16> dl_ref;
    cpu_reference(logits, targets, rows, v, scale, loss_ref, dl_ref);
    auto losses = test::poisoned<float>(rows);
    std::vector<bf16> dl = test::poisoned<bf16>(logits.size()), in_place = logits;
    kernels::cross_entropy_forward_backward(dev(logits), targets.data(), dev(dl), losses.data(), rows, v, scale, kIgnore, nullptr);
    EXPECT_LE(scaled_error(losses, loss_ref), 1e-5) << rows << "x" << v;
    EXPECT_LE(scaled_error(dl, dl_ref), kOneBf16Rounding) << rows << "x" << v;
    kernels::cross_entropy_forward_backward(dev(in_place), targets.data(), dev(in_place), losses.data(), rows, v, scale, kIgnore,
                                            nullptr);
    EXPECT_EQ(0, std::memcmp(in_place.data(), dl.data(), dl.size() * sizeof(bf16))) << "in place differs";
  }
}

// Two vocabulary shards, the second with 24 padding columns, combined as the vocab-parallel loss
// does: global max, rescaled sum, logz, then each shard's gradient; the target logit comes from its
// owner. Each shard's pieces match the CPU shard ops, and together they give the full loss.
TEST(CrossEntropyKernel, ShardedStatisticsRecombineToTheFullLoss) {
  const int rows = 9, v = 1000, split = 600, pad = 24;
  const auto logits = random_bf16(static_cast<size_t>(rows) * v, 2, 2.0f);
  const auto targets = targets_for(rows, v);
  const float scale = 0.5f;
  std::vector<double> loss_ref;
  std::vector<bf16> dl_ref;
  cpu_reference(logits, targets, rows, v, scale, loss_ref, dl_ref);

  const int valid[2] = {split, v - split}, widths[2] = {split, v - split + pad}, starts[2] = {0, split};
  std::vector<bf16> shard[2], dshard[2], dshard_cpu[2];
  std::vector<float> mx[2], sm[2], tl[2], mx_cpu[2], sm_cpu[2], tl_cpu[2];
  for (int s = 0; s < 2; ++s) {
    for (int r = 0; r < rows; ++r) {
      shard[s].insert(shard[s].end(), logits.begin() + r * v + starts[s], logits.begin() + r * v + starts[s] + valid[s]);
      shard[s].insert(shard[s].end(), widths[s] - valid[s], bf16(5.0f));  // padding: a large logit that must not count
    }
    for (auto* x : {&mx[s], &sm[s], &tl[s]}) *x = test::poisoned<float>(rows);
    for (auto* x : {&mx_cpu[s], &sm_cpu[s], &tl_cpu[s]}) x->resize(rows);
    dshard[s].resize(shard[s].size()), dshard_cpu[s].resize(shard[s].size());
    kernels::cross_entropy_shard_stats(dev(shard[s]), targets.data(), rows, widths[s], valid[s], starts[s], kIgnore, mx[s].data(),
                                       sm[s].data(), tl[s].data(), nullptr);
    cpu::cross_entropy_shard_stats<bf16>(shard[s].data(), targets.data(), rows, widths[s], valid[s], starts[s], kIgnore,
                                         mx_cpu[s].data(), sm_cpu[s].data(), tl_cpu[s].data());
    EXPECT_EQ(mx[s], mx_cpu[s]);
    EXPECT_LE(scaled_error(sm[s], sm_cpu[s]), 1e-5);
    EXPECT_EQ(tl[s], tl_cpu[s]);
  }
  std::vector<float> logz(rows);
  for (int r = 0; r < rows; ++r) {
    const float m = std::max(mx[0][r], mx[1][r]);
    logz[r] = m + std::log(sm[0][r] * std::exp(mx[0][r] - m) + sm[1][r] * std::exp(mx[1][r] - m));
  }
  for (int s = 0; s < 2; ++s) {
    kernels::cross_entropy_shard_grad(dev(shard[s]), targets.data(), logz.data(), dev(dshard[s]), rows, widths[s], valid[s],
                                      starts[s], scale, kIgnore, nullptr);
    cpu::cross_entropy_shard_grad<bf16>(shard[s].data(), targets.data(), logz.data(), dshard_cpu[s].data(), rows, widths[s],
                                        valid[s], starts[s], kIgnore, scale);
    EXPECT_LE(scaled_error(dshard[s], dshard_cpu[s]), kOneBf16Rounding);
  }
  std::vector<double> loss(rows);
  std::vector<bf16> dl;
  for (int r = 0; r < rows; ++r) {
    loss[r] = targets[r] == kIgnore ? 0.0 : logz[r] - (tl[0][r] + tl[1][r]);
    for (int s = 0; s < 2; ++s) {
      dl.insert(dl.end(), dshard[s].begin() + r * widths[s], dshard[s].begin() + r * widths[s] + valid[s]);
      for (int j = valid[s]; j < widths[s]; ++j) EXPECT_EQ(static_cast<float>(dshard[s][r * widths[s] + j]), 0.f) << "padding";
    }
  }
  EXPECT_LE(scaled_error(loss, loss_ref), 1e-5);
  EXPECT_LE(scaled_error(dl, dl_ref), kOneBf16Rounding);
}

TEST(EmbeddingKernel, MatchesCpuReferenceAndIsDeterministic) {
  const int v = 97, c = 64, n = 51;
  const auto table = random_bf16(static_cast<size_t>(v) * c, 3, 0.5f), dy = random_bf16(static_cast<size_t>(n) * c, 4, 1.0f);
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 13) % v;
  ids[n - 1] = ids[0];  // a repeated id accumulates twice
  std::vector<bf16> y = test::poisoned<bf16>(static_cast<size_t>(n) * c), y_ref(y.size());
  std::vector<float> dt(table.size(), 0.f), dt_ref(table.size(), 0.f), dt2(table.size(), 0.f);
  cpu::embedding_fwd<bf16>(ids.data(), table.data(), y_ref.data(), n, c);
  cpu::embedding_bwd<bf16>(ids.data(), dy.data(), dt_ref.data(), n, c);
  kernels::embedding_forward(ids.data(), dev(table), dev(y), n, c, nullptr);
  kernels::embedding_backward(ids.data(), dev(dy), dt.data(), n, c, nullptr);
  kernels::embedding_backward(ids.data(), dev(dy), dt2.data(), n, c, nullptr);
  EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(bf16)));  // a copy
  EXPECT_EQ(dt, dt_ref);  // both add each column's contributions in token order
  EXPECT_EQ(dt, dt2);
}

}  // namespace
}  // namespace llamatron::test
