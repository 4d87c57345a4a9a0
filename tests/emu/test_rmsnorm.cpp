// kernels/rmsnorm.cu, run by the emulator, against the CPU implementation (csrc/ops/cpu/rmsnorm.cpp,
// itself checked against PyTorch). Same bf16 inputs; both compute in fp32 but sum in different
// orders, so a bf16 output may differ by one rounding (2^-8 of the tensor's scale) and fp32 ones by
// reordering error (1e-5 of scale).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/rmsnorm.cuh"
#include "tests/emu/kernel_test_util.h"
#include "ops/cpu/cpu_ops.h"

namespace llamatron {
namespace {

using test::dev;
using test::random_bf16;
using test::scaled_error;

struct Shape {
  int rows, c;
  friend void PrintTo(const Shape& s, std::ostream* os) { *os << s.rows << "x" << s.c; }
};

class RmsNormKernel : public testing::TestWithParam<Shape> {};

TEST_P(RmsNormKernel, MatchesCpuReference) {
  const auto [rows, c] = GetParam();
  const size_t n = static_cast<size_t>(rows) * c;
  const float eps = 1e-5f;
  const auto x = random_bf16(n, 1, 1.0f), w = random_bf16(c, 2, 0.1f, 1.0f), dy = random_bf16(n, 3, 1.0f);
  const auto dx0 = random_bf16(n, 4, 1.0f);  // existing gradient: the backward accumulates into it

  std::vector<bf16> y_ref(n), y = test::poisoned<bf16>(n), dx_ref = dx0, dx = dx0;
  std::vector<float> rstd_ref(rows), rstd = test::poisoned<float>(rows), dw_ref(c, 0.5f), dw(c, 0.5f);
  cpu::rmsnorm_fwd<bf16>(x.data(), w.data(), y_ref.data(), rstd_ref.data(), rows, c, eps);
  cpu::rmsnorm_bwd<bf16>(dy.data(), x.data(), w.data(), rstd_ref.data(), dx_ref.data(), dw_ref.data(), rows, c, true);

  auto partial = test::poisoned<float>(static_cast<size_t>(kernels::rmsnorm_dweight_slices(rows)) * c);
  kernels::rmsnorm_forward(dev(x), dev(w), dev(y), rstd.data(), rows, c, eps, nullptr);
  kernels::rmsnorm_backward(dev(dy), dev(x), dev(w), rstd.data(), dev(dx), dw.data(), partial.data(), rows, c, true, nullptr);

  EXPECT_LE(scaled_error(y, y_ref), test::kOneBf16Rounding);
  EXPECT_LE(scaled_error(rstd, rstd_ref), 1e-5);
  EXPECT_LE(scaled_error(dx, dx_ref), test::kOneBf16Rounding);
  EXPECT_LE(scaled_error(dw, dw_ref), 1e-5);
}

// Odd widths take the scalar path, multiples of 8 the 128-bit one; 4100 rows use many dweight slices.
INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormKernel,
                         testing::Values(Shape{1, 64}, Shape{7, 130}, Shape{33, 1000}, Shape{9, 8192}, Shape{300, 77},
                                         Shape{4100, 64}),
                         [](const testing::TestParamInfo<Shape>& i) {
                           return "rows" + std::to_string(i.param.rows) + "_c" + std::to_string(i.param.c);
                         });

// The weight gradient is reduced in a fixed order: the same bits on every run.
TEST(RmsNormKernelDeterminism, WeightGradientIsBitIdenticalAcrossRuns) {
  const int rows = 1000, c = 96;
  const auto x = random_bf16(rows * c, 5, 1.0f), w = random_bf16(c, 6, 0.1f, 1.0f), dy = random_bf16(rows * c, 7, 1.0f);
  std::vector<float> rstd(rows), partial(static_cast<size_t>(kernels::rmsnorm_dweight_slices(rows)) * c);
  std::vector<bf16> y(rows * c), dx(rows * c);
  kernels::rmsnorm_forward(dev(x), dev(w), dev(y), rstd.data(), rows, c, 1e-5f, nullptr);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    std::vector<float> dw(c, 0.f);
    kernels::rmsnorm_backward(dev(dy), dev(x), dev(w), rstd.data(), dev(dx), dw.data(), partial.data(), rows, c, false, nullptr);
    if (run == 0) first = dw;
    else EXPECT_EQ(0, std::memcmp(first.data(), dw.data(), c * sizeof(float)));
  }
}

}  // namespace
}  // namespace llamatron
