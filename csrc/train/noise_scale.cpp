#include "llamatron/noise_scale.h"

#include <cmath>

namespace llamatron {

double NoiseScale::update(double small_sq, double b_small, double big_sq, double b_big) {
  grad_sq_ = ema_ * grad_sq_ + (1 - ema_) * grad_sq(small_sq, b_small, big_sq, b_big);
  trace_ = ema_ * trace_ + (1 - ema_) * trace(small_sq, b_small, big_sq, b_big);
  return grad_sq_ > 0 ? trace_ / grad_sq_ : std::nan("");
}

}  // namespace llamatron
