#include <algorithm>
#include <sstream>

#include "llamatron/data.h"
#include "llamatron/errors.h"

namespace llamatron {

BlendSource::BlendSource(std::vector<std::unique_ptr<TokenSource>> sources, std::vector<double> weights)
    : sources_(std::move(sources)), weights_(std::move(weights)), counts_(sources_.size(), 0) {
  LT_CHECK(!sources_.empty() && sources_.size() == weights_.size(), "a blend needs one weight per source");
  double total = 0;
  for (double w : weights_) total += w;
  for (double& w : weights_) w /= total;
}

std::pair<int, int64_t> BlendSource::locate(int64_t s) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (s < cursor_) cursor_ = 0, std::fill(counts_.begin(), counts_.end(), 0);  // going back: walk again
  for (;; ++cursor_) {
    // The source that lags its share the most after cursor_ + 1 samples (ties: the first).
    int best = 0;
    double lag = -1e300;
    for (size_t d = 0; d < sources_.size(); ++d) {
      const double l = weights_[d] * static_cast<double>(cursor_ + 1) - static_cast<double>(counts_[d]);
      if (l > lag) lag = l, best = static_cast<int>(d);
    }
    const int64_t k = counts_[best]++;
    if (cursor_ == s) {
      ++cursor_;
      return {best, k};
    }
  }
}

void BlendSource::read(int64_t first, int64_t count, int64_t seq, int32_t* tokens) const {
  for (int64_t b = 0; b < count; ++b) {
    const auto [d, k] = locate(first + b);
    sources_[d]->read(k, 1, seq, tokens + b * (seq + 1));
  }
}

std::string BlendSource::describe() const {
  std::ostringstream s;
  s << "blend of " << sources_.size() << ":";
  for (size_t d = 0; d < sources_.size(); ++d) s << (d ? ";" : "") << " " << weights_[d] << " x " << sources_[d]->describe();
  return s.str();
}

}  // namespace llamatron
