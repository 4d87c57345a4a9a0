#include "llamatron/batch_ramp.h"

#include <fmt/format.h>

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
  need(start_ <= global, fmt::format("starts at {} sequences, above the global batch of {}", start_, global));
  need((global - start_) % increment_ == 0,
       fmt::format("grows by {} from {}, which never reaches the global batch of {}: make global - start a multiple of the increment",
                   increment_, start_, global));
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
  for (const int64_t b : sizes())
    if (b % per_micro != 0 || (b / per_micro) % group != 0) return b;
  return 0;
}

std::string BatchRamp::describe() const {
  if (!on()) return fmt::format("{} sequences", global_);
  return fmt::format("{} -> {} sequences (+{} every {:g} samples, over the first {} samples)", start_, global_, increment_,
                     samples_per_increment_, samples_);
}

}  // namespace llamatron
