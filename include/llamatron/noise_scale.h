// The gradient noise scale (logging.gns): McCandlish et al. 2018's simple estimator B_simple =
// tr(Σ) / |G|², from two gradient norms a step already has: the mean squared norm of the small
// batches' gradients (each data-parallel rank's, before the DP reduction) and the squared norm of
// the global batch's gradient. Both unbiased estimates are smoothed by an EMA before dividing.
#pragma once
#include <cstdint>

namespace llamatron {

class NoiseScale {
 public:
  explicit NoiseScale(double ema = 0.95) : ema_(ema) {}
  // One step: small_sq = mean over the small batches of |G_small|² at b_small sequences each,
  // big_sq = |G_big|² at b_big > b_small. Returns B_simple in sequences after this step's update,
  // NaN while the smoothed |G|² is not positive.
  double update(double small_sq, double b_small, double big_sq, double b_big);
  // The step's unbiased estimates of |G|² and tr(Σ) (before smoothing).
  static double grad_sq(double small_sq, double b_small, double big_sq, double b_big) {
    return (b_big * big_sq - b_small * small_sq) / (b_big - b_small);
  }
  static double trace(double small_sq, double b_small, double big_sq, double b_big) {
    return (small_sq - big_sq) / (1 / b_small - 1 / b_big);
  }

 private:
  double ema_;
  double grad_sq_ = 0, trace_ = 0;  // zero-started EMAs: their ratio needs no bias correction (it cancels)
};

}  // namespace llamatron
