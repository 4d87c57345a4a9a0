#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"

namespace llamatron {

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string clock(double s) {
  const auto t = static_cast<long long>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{}:{:02}", t / 60, t % 60);
}
}  // namespace

std::string progress_line(int64_t step, int64_t total, int64_t first_step, double elapsed_s, double loss, double tokens_per_s) {
  constexpr int kWidth = 30;
  const double done = total > 0 ? static_cast<double>(step) / static_cast<double>(total) : 1.0;
  const int filled = static_cast<int>(done * kWidth);
  // The ETA extrapolates this run's pace (a resumed run's earlier steps took no time here).
  const int64_t ran = step - first_step;
  const std::string eta = ran > 0 ? clock(elapsed_s / static_cast<double>(ran) * static_cast<double>(total - step)) : "?";
  return fmt::format("[{}{}] {:>{}}/{} {:3.0f}% | loss {:.4f} | {:.1f}k tok/s | {} elapsed, ETA {}", std::string(filled, '#'),
                     std::string(kWidth - filled, '.'), step, fmt::formatted_size("{}", total), total, 100 * done, loss,
                     tokens_per_s / 1e3, clock(elapsed_s), eta);
}

namespace {
// Forwards each log message to the sinks it replaced, with the bar wiped around it.
class BarSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BarSink(ProgressBar& bar, std::vector<spdlog::sink_ptr> inner) : bar_(bar), inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    bar_.hide();
    for (auto& s : inner_) s->log(msg);
    for (auto& s : inner_) s->flush();
    bar_.show();
  }
  void flush_() override {
    for (auto& s : inner_) s->flush();
  }

 private:
  ProgressBar& bar_;
  std::vector<spdlog::sink_ptr> inner_;
};
}  // namespace

ProgressBar::ProgressBar(int64_t first_step, int64_t total_steps, bool enabled)
    : first_(first_step), total_(total_steps), enabled_(enabled), start_s_(now_s()) {
  if (!enabled_) return;
  auto logger = spdlog::default_logger();
  saved_sinks_ = logger->sinks();
  logger->sinks() = {std::make_shared<BarSink>(*this, saved_sinks_)};
}

ProgressBar::~ProgressBar() {
  if (!enabled_) return;
  clear();
  spdlog::default_logger()->sinks() = saved_sinks_;
}

void ProgressBar::draw(int64_t step, double loss, double tokens_per_s) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  line_ = progress_line(step, total_, first_, now_s() - start_s_, loss, tokens_per_s);
  std::fprintf(stderr, "\r\033[K%s", line_.c_str());
  std::fflush(stderr);
  visible_ = true;
}

void ProgressBar::hide() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!visible_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  visible_ = false;
}

void ProgressBar::show() {
  std::lock_guard<std::mutex> lock(mu_);
  if (line_.empty() || visible_) return;
  std::fprintf(stderr, "%s", line_.c_str());
  std::fflush(stderr);
  visible_ = true;
}

void ProgressBar::clear() {
  if (!enabled_) return;
  hide();
  std::lock_guard<std::mutex> lock(mu_);
  line_.clear();
}

}  // namespace llamatron
