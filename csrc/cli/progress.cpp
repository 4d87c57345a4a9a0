#include <chrono>
#include <cstdio>

#include <fmt/format.h>

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

ProgressBar::ProgressBar(int64_t first_step, int64_t total_steps, bool enabled)
    : first_(first_step), total_(total_steps), enabled_(enabled), start_s_(now_s()) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', stderr);
}

void ProgressBar::draw(int64_t step, double loss, double tokens_per_s) {
  if (!enabled_) return;
  std::fprintf(stderr, "\r\033[K%s", progress_line(step, total_, first_, now_s() - start_s_, loss, tokens_per_s).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace llamatron
