// fast_exp against libm's exp in double: relative error within 2 ulp of fp32 (2^-22) over the
// whole range where exp is a normal float, and the edge values the attention mask relies on.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/cpu/vec_math.h"

namespace llamatron::cpu {

TEST(FastExp, WithinTwoUlpOfLibm) {
  double worst = 0;
  for (float x = -87.0f; x < 88.3f; x += 0.000731f) {
    const double e = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(fast_exp(x) - e) / e);
  }
  EXPECT_LE(worst, std::ldexp(1.0, -22));
}

TEST(FastExp, EdgeValues) {
  EXPECT_EQ(fast_exp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(fast_exp(-100.0f), 0.0f);
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  EXPECT_TRUE(std::isfinite(fast_exp(1000.0f)));
}

}  // namespace llamatron::cpu
