// The subcommands that live outside main.cpp.
#pragma once
#include <string>
#include <vector>

#include "llamatron/planner.h"

namespace llamatron {

// `llamatron plan CONFIG --gpus N --gpu NAME`: the ranked layout table (planner.h).
int cmd_plan(const std::string& config_path, const std::vector<std::string>& overrides, PlanOptions opts,
             const std::string& gpu, int top);

}  // namespace llamatron

namespace llamatron {

// A progress bar with ETA on stderr, redrawn after each step; clear() it before printing a log
// line. Disabled (every call a no-op) when not attached to a terminal, unless forced.
class ProgressBar {
 public:
  ProgressBar(int64_t first_step, int64_t total_steps, bool enabled);
  ~ProgressBar();
  void draw(int64_t step, double loss, double tokens_per_s);
  void clear();

 private:
  int64_t first_, total_;
  bool enabled_, drawn_ = false;
  double start_s_;
};

// "[#####.....]  120/200  60% | loss 1.2345 | 95.1k tok/s | 0:21 elapsed, ETA 0:14"
std::string progress_line(int64_t step, int64_t total, int64_t first_step, double elapsed_s, double loss, double tokens_per_s);

}  // namespace llamatron
