// The subcommands that live outside main.cpp.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/sinks/sink.h>

#include "llamatron/dedup.h"
#include "llamatron/planner.h"
#include "llamatron/text_filter.h"

namespace CLI {
class App;
}

namespace llamatron {

// `llamatron plan CONFIG --gpus N --gpu NAME`: the ranked layout table (planner.h).
// Hardware figures `plan` can take instead of its GPU table's: a peak (TFLOP/s), the inter-node
// bandwidth per GPU (GB/s), GPUs per node; and one layout (TP,PP,DP) to estimate alone.
struct PlanHardware {
  double tflops = 0, network_gbs = 0;
  int per_node = 0;
  std::vector<int> layout;
};
int cmd_plan(const std::string& config_path, const std::vector<std::string>& overrides, PlanOptions opts, const std::string& gpu,
             int top, const PlanHardware& hw);

// `llamatron resize CONFIG --from-ranks N --hosts HOST:SLOTS,...`: the layout an elastic restart
// continues with (elastic.h), printed as "np N", "host NAME SLOTS" and "set KEY=VALUE" lines.
int cmd_resize(const std::string& config_path, const std::vector<std::string>& overrides, int from_ranks,
               const std::vector<std::string>& hosts);

// `llamatron data filter` / `data dedup` (data_text.cpp): their options, then the commands.
void add_data_filter(CLI::App& data, FilterRun& run, CLI::App*& cmd);
void add_data_dedup(CLI::App& data, DedupRun& run, CLI::App*& cmd);
int cmd_data_filter(const FilterRun& run);
int cmd_data_dedup(const DedupRun& run);

}  // namespace llamatron

namespace llamatron {

// A progress bar with ETA on stderr, redrawn after each step. While it is shown, every log line
// (spdlog's default logger, any thread: checkpoint saves log from the writer) wipes it, prints, and
// draws it again underneath. Disabled (every call a no-op) when not attached to a terminal, unless forced.
class ProgressBar {
 public:
  ProgressBar(int64_t first_step, int64_t total_steps, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  void draw(int64_t step, double loss, double tokens_per_s);
  void clear();   // wipe it for good (the run is over)
  void hide();    // wipe it before a log line...
  void show();    // ...and draw it again after

 private:
  int64_t first_, total_;
  bool enabled_;
  double start_s_;
  std::mutex mu_;
  std::string line_;     // what is drawn ("" once cleared)
  bool visible_ = false;
  std::vector<std::shared_ptr<spdlog::sinks::sink>> saved_sinks_;
};

// "[#####.....]  120/200  60% | loss 1.2345 | 95.1k tok/s | 0:21 elapsed, ETA 0:14"
std::string progress_line(int64_t step, int64_t total, int64_t first_step, double elapsed_s, double loss, double tokens_per_s);

}  // namespace llamatron
