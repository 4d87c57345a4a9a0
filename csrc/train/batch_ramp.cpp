#include "llamatron/batch_ramp.h"

#include <algorithm>
#include <cstdio>

#include "llamatron/errors.h"

namespace llamatron {

BatchRamp::BatchRamp(const TrainConfig& train, int64_t global) : global_(global) {
  const std::vector<int64_t>& r = train.rampup_batch_size;
  if (r.empty()) return;
  const auto need = [&](bool ok, const std::string& what) {
    if (!ok)
      throw Error("invalid config: train.rampup_batch_size " + what + " (it is [start, increment, ramp_samples], Megatron's "
                  "--rampup-batch-size; [] turns it off)");
  };
  need(r.size() == 3, "has " + std::to_string(r.size()) + " entries, not 3");
  start_ = r[0], increment_ = r[1], samples_ = r[2];
  need(start_ > 0 && increment_ > 0 && samples_ > 0, "needs a positive start, increment and ramp_samples");
  const auto n = [](int64_t x) { return std::to_string(x); };
  need(start_ <= global, "starts at " + n(start_) + " sequences, above the global batch of " + n(global));
  need((global - start_) % increment_ == 0, "grows by " + n(increment_) + " from " + n(start_) + ", which never reaches the global batch of " +
                                                n(global) + ": make global - start a multiple of the increment");
  if (on()) samples_per_increment_ = static_cast<double>(samples_) / static_cast<double>((global - start_) / increment_);
}

int64_t BatchRamp::global_batch_at(int64_t consumed) const {
  if (!on() || consumed > samples_) return global_;
  // Megatron: steps = int(consumed_samples / rampup_samples_per_increment), in floating point.
  const auto increments = static_cast<int64_t>(static_cast<double>(consumed) / samples_per_increment_);
  return std::min(global_, start_ + increments * increment_);
}

std::vector<int64_t> BatchRamp::sizes() const {
  std::vector<int64_t> out;
  for (int64_t b = on() ? start_ : global_; b < global_; b += increment_) out.push_back(b);
  out.push_back(global_);
  return out;
}

int64_t BatchRamp::first_unfit(int64_t per_micro, int64_t group) const {
  // A size fits when it is a multiple of per_micro * group. start + k * increment modulo that
  // repeats with a period of at most per_micro * group steps: those and the full batch decide.
  const int64_t whole = per_micro * group;
  if (on()) {
    const int64_t steps = (global_ - start_) / increment_;  // sizes start .. global - increment
    for (int64_t k = 0; k < std::min(steps, whole); ++k)
      if ((start_ + k * increment_) % whole != 0) return start_ + k * increment_;
  }
  return global_ % whole != 0 ? global_ : 0;
}

std::string BatchRamp::describe() const {
  if (!on()) return std::to_string(global_) + " sequences";
  char every[32];
  std::snprintf(every, sizeof every, "%g", samples_per_increment_);
  return std::to_string(start_) + " -> " + std::to_string(global_) + " sequences (+" + std::to_string(increment_) + " every " + every +
         " samples, over the first " + std::to_string(samples_) + " samples)";
}

}  // namespace llamatron
