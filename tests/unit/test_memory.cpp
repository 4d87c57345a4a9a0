// Memory: activation recomputation gives bit-identical training with fewer bytes kept, and the
// planner's per-rank memory agrees with the engine's own allocation accounting (memory.h).
#include <gtest/gtest.h>

#include <cstring>

#include "llamatron/memory.h"
#include "llamatron/planner.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace {

RunConfig small(const std::string& precision, const std::string& recompute) {
  RunConfig c;
  c.model.vocab_size = 96, c.model.dim = 64, c.model.n_layers = 3, c.model.n_heads = 4, c.model.n_kv_heads = 2;
  c.model.ffn_dim = 160, c.model.max_seq_len = 32;
  c.train.steps = 4, c.train.micro_batch_size = 3, c.train.seq_length = 32, c.train.threads = 2;
  c.train.precision = precision, c.train.recompute = recompute, c.parallel.data_parallel = 1;
  return c;
}

std::vector<char> bytes_of(const Tensor& t) {
  std::vector<char> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

// What a trainer's two steps allocate, by category: each category's peak, and the total's, over
// the steps (the set-up's transients, like the weights drawn on the host, excluded).
struct Measured {
  MemoryCounts base, after;
  double peak(MemCategory c) const { return static_cast<double>(after.peak[static_cast<int>(c)] - base.current[static_cast<int>(c)]); }
  double total() const { return static_cast<double>(after.total_peak - base.total); }
};

TEST(Recompute, SameLossesGradientsAndWeightsWithLessActivationMemory) {
  for (const char* precision : {"bf16", "fp32"}) {
    std::vector<double> losses, norms;
    std::vector<char> grads, weights;
    double kept_before = 1e300;
    for (const char* mode : {"none", "selective", "full"}) {
      const int64_t before = memory_counts(Device::CPU)[MemCategory::Activations];
      Trainer t(small(precision, mode));
      std::vector<double> l, n;
      for (int i = 0; i < 3; ++i) {
        const StepStats s = t.step();
        l.push_back(s.loss), n.push_back(s.grad_norm);
      }
      const double kept = static_cast<double>(memory_counts(Device::CPU)[MemCategory::Activations] - before);
      if (losses.empty()) {
        losses = l, norms = n, grads = bytes_of(t.model().params().grads_flat()), weights = bytes_of(t.model().params().params_flat());
      } else {
        EXPECT_EQ(l, losses) << precision << " " << mode;
        EXPECT_EQ(n, norms) << precision << " " << mode;
        EXPECT_TRUE(bytes_of(t.model().params().grads_flat()) == grads) << precision << " " << mode << ": gradients differ";
        EXPECT_TRUE(bytes_of(t.model().params().params_flat()) == weights) << precision << " " << mode << ": weights differ";
      }
      EXPECT_LT(kept, kept_before) << precision << " " << mode << " keeps no less than the mode before it";
      kept_before = kept;
    }
  }
}

// The planner against the accounting, category by category and in total, within 10% (the issue's
// bound), over precisions, recompute modes, micro-batch counts, tied embeddings and bf16 wires.
TEST(Planner, MemoryAgreesWithTheEngineAccounting) {
  std::vector<RunConfig> configs;
  for (const char* precision : {"bf16", "fp32"})
    for (const char* mode : {"none", "selective", "full"}) configs.push_back(small(precision, mode));
  configs.push_back(small("bf16", "none"));
  configs.back().model.tie_embeddings = true;
  configs.push_back(small("bf16", "selective"));
  configs.back().train.grad_accum_steps = 3, configs.back().train.micro_batch_size = 1;
  configs.push_back(small("bf16", "full"));
  configs.back().model.n_kv_heads = 1, configs.back().model.vocab_size = 1000;
  for (const RunConfig& c : configs) {
    const std::string what = c.train.precision + " recompute " + c.train.recompute + (c.model.tie_embeddings ? " tied" : "") +
                             " M=" + std::to_string(c.train.grad_accum_steps) + " V=" + std::to_string(c.model.vocab_size);
    Measured m;
    m.base = memory_counts(Device::CPU);
    Trainer t(c);
    reset_memory_peaks(Device::CPU);
    t.step(), t.step();
    m.after = memory_counts(Device::CPU);
    const MemoryPlan p = plan_memory(c, 0);
    const std::pair<MemCategory, double> planned[] = {
        {MemCategory::Weights, p.weights}, {MemCategory::Grads, p.grads}, {MemCategory::Optimizer, p.optimizer},
        {MemCategory::Activations, p.activations}, {MemCategory::Workspace, p.workspace}, {MemCategory::Comm, p.comm}};
    for (const auto& [cat, bytes] : planned)
      EXPECT_NEAR(m.peak(cat), bytes, 0.1 * bytes) << what << ": " << mem_category_name(cat);
    EXPECT_NEAR(m.total(), p.total(), 0.1 * p.total()) << what << ": total (other: " << m.peak(MemCategory::Other) << " B)";
  }
}

}  // namespace
}  // namespace llamatron
