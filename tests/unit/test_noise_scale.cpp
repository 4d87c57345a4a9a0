// The gradient noise scale's estimator (noise_scale.h) on values worked by hand. Against per-sample
// gradients of a real model (PyTorch): tests/e2e/noise_scale.sh.
#include <gtest/gtest.h>

#include <cmath>

#include "llamatron/noise_scale.h"

namespace llamatron {
namespace {

TEST(NoiseScale, McCandlishSimpleEstimatorSmoothedBeforeDividing) {
  // |G_small|^2 = 3 at 2 sequences, |G_big|^2 = 2 at 4: |G|^2 = (4*2 - 2*3) / 2 = 1,
  // tr(Σ) = (3 - 2) / (1/2 - 1/4) = 4.
  EXPECT_DOUBLE_EQ(NoiseScale::grad_sq(3, 2, 2, 4), 1.0);
  EXPECT_DOUBLE_EQ(NoiseScale::trace(3, 2, 2, 4), 4.0);
  NoiseScale n(0.5);
  EXPECT_DOUBLE_EQ(n.update(3, 2, 2, 4), 4.0);  // EMAs 0.5 and 2: their ratio, no bias correction needed
  // |G|^2 = (8 - 10) / 2 = -1, tr = 3 / 0.25 = 12: the smoothed |G|^2 is -0.25, so no estimate.
  EXPECT_TRUE(std::isnan(n.update(5, 2, 2, 4)));
  // |G|^2 = 1.5, tr = 2: EMAs 0.625 and 4.5.
  EXPECT_DOUBLE_EQ(n.update(2.5, 2, 2, 4), 4.5 / 0.625);
}

}  // namespace
}  // namespace llamatron
