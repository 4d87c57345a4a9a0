// kernels/optimizer.cu, run by the emulator, against the CPU optimizer (csrc/ops/cpu/adamw.cpp,
// itself checked against torch.optim.AdamW): fused AdamW over a flat buffer with per-range weight
// decay, the grad-norm reduction, and stochastic rounding's two properties (deterministic in the
// seed, unbiased).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/optimizer.cuh"
#include "ops/cpu/cpu_ops.h"
#include "tests/emu/kernel_test_util.h"

namespace llamatron::test {
namespace {

TEST(AdamWKernel, MatchesCpuOptimizerOverRangesWithDifferentDecay) {
  const std::vector<int64_t> range_end = {1000, 1007, 1340};  // e.g. a matrix, a norm weight, a matrix
  const std::vector<float> range_wd = {0.1f, 0.0f, 0.1f};
  const int64_t n = range_end.back();
  std::vector<float> master = random_f32(n, 1, 0.05f), m(n, 0.f), v(n, 0.f);
  std::vector<float> master_ref = master, m_ref = m, v_ref = v;
  std::vector<bf16> param(n), param_ref(n);
  for (int64_t step = 1; step <= 3; ++step) {
    const auto grad = random_f32(n, 10 + step, 0.01f);
    const float clip = step == 2 ? 0.5f : 1.0f;
    int64_t begin = 0;
    for (size_t r = 0; r < range_end.size(); ++r) {
      const cpu::AdamWParams p{1e-3f, 0.9f, 0.95f, 1e-8f, range_wd[r], step, clip};
      cpu::adamw_step<bf16>(master_ref.data() + begin, grad.data() + begin, m_ref.data() + begin, v_ref.data() + begin,
                            param_ref.data() + begin, range_end[r] - begin, p);
      begin = range_end[r];
    }
    kernels::adamw_step<float>(master.data(), grad.data(), m.data(), v.data(), dev(param), n, range_end.data(), range_wd.data(),
                               static_cast<int>(range_end.size()), kernels::make_adamw_args(1e-3f, 0.9f, 0.95f, 1e-8f, step, clip),
                               nullptr);
  }
  EXPECT_LE(scaled_error(master, master_ref), 1e-6);  // the same fp32 formula, element by element
  EXPECT_LE(scaled_error(m, m_ref), 1e-6);
  EXPECT_LE(scaled_error(v, v_ref), 1e-6);
  EXPECT_LE(scaled_error(param, param_ref), kOneBf16Rounding);
}

TEST(AdamWKernel, StochasticRoundingIsDeterministicAndUnbiased) {
  // lr = 0 leaves master unchanged, so param is just the rounding of master under test.
  const int64_t n = 100000;
  const float ulp = 1.0f / 128;  // bf16 spacing in [1, 2)
  std::vector<float> master(n, 1.0f + 0.3f * ulp), zeros(n, 0.f), m(n), v(n);
  const std::vector<int64_t> end = {n};
  const std::vector<float> wd = {0.f};
  auto run = [&](uint32_t seed) {
    std::vector<bf16> param(n);
    kernels::adamw_step<float>(master.data(), zeros.data(), m.data(), v.data(), dev(param), n, end.data(), wd.data(), 1,
                               kernels::make_adamw_args(0.f, 0.9f, 0.95f, 1e-8f, 1, 1.f, true, seed), nullptr);
    return param;
  };
  const auto a = run(7), b = run(7), c = run(8);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(bf16)));
  EXPECT_NE(0, std::memcmp(a.data(), c.data(), n * sizeof(bf16)));
  double up = 0;
  for (const bf16 x : a) {
    const float f = static_cast<float>(x);
    ASSERT_TRUE(f == 1.0f || f == 1.0f + ulp) << f;  // always one of the two neighbours
    up += f > 1.0f;
  }
  const double p = 0.3, sigma = std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(up / n, p, 4 * sigma);  // rounds up as often as the distance says: unbiased
}

TEST(GradNormKernel, MatchesCpuSumOfSquares) {
  for (int64_t n : {1, 1000, 123457}) {
    const auto g = random_f32(n, 20, 0.3f);
    auto scratch = test::poisoned<float>(kernels::sum_squares_scratch_floats());
    float ours = 0;
    kernels::sum_squares<float>(g.data(), n, scratch.data(), &ours, nullptr);
    const double ref = cpu::sum_squares(g.data(), n);
    EXPECT_NEAR(ours, ref, 1e-5 * ref) << n;
    float again = 0;
    kernels::sum_squares<float>(g.data(), n, scratch.data(), &again, nullptr);
    EXPECT_EQ(ours, again);  // fixed order
  }
}

}  // namespace
}  // namespace llamatron::test
