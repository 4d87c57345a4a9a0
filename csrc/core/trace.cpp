#include "llamatron/trace.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <mutex>

#include "llamatron/comm.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"

#if LLAMATRON_HAVE_CUDA
#include <nvtx3/nvToolsExt.h>  // header-only: a no-op unless Nsight (or another tool) is attached
#endif

namespace llamatron::trace {
namespace {

struct Recorder {
  std::mutex mu;
  bool on = false;
  bool aligned = false;
  double origin_us = 0;
  int64_t step = 0;
  std::map<std::string, int> rows{{"compute", 0}};  // row name -> tid, in order of first use
  std::vector<nlohmann::json> events;
  DeviceTimeline* timeline = nullptr;  // the device's, while it lives
  bool device_streams = false;
  struct DeviceEvent {
    std::string name;
    const char* category;
    std::string row;
    int begin, end;
    Args args;
    int64_t step;
  };
  std::vector<DeviceEvent> device_events;  // their times come from the timeline at write()
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

nlohmann::json args_json(const Args& args, int64_t step) {
  nlohmann::json a = nlohmann::json::object();
  a["step"] = step;
  for (const Arg& x : args) {
    if (x.text.empty())
      a[x.key] = x.number;
    else
      a[x.key] = x.text;
  }
  return a;
}

}  // namespace

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool recording() { return recorder().on; }

void start(int64_t step, Communicator& world, bool device_streams) {
  Recorder& r = recorder();
  r.device_streams = device_streams;
  if (!r.aligned) {
    world.barrier();  // every rank leaves it at about the same moment: a common time origin
    r.origin_us = now_us();
    r.aligned = true;
  }
  std::lock_guard<std::mutex> lock(r.mu);
  r.step = step;
  r.on = true;
}

void stop() { recorder().on = false; }

void event(std::string name, const char* category, const std::string& row, double t0, double t1, Args args) {
  Recorder& r = recorder();
  if (!r.on) return;
  std::lock_guard<std::mutex> lock(r.mu);
  const int tid = r.rows.emplace(row, static_cast<int>(r.rows.size())).first->second;
  r.events.push_back({{"name", std::move(name)},
                      {"cat", category},
                      {"ph", "X"},
                      {"ts", std::max(0.0, t0 - r.origin_us)},  // a collective issued before tracing began: from its start
                      {"dur", std::max(0.0, t1 - std::max(t0, r.origin_us))},
                      {"tid", tid},
                      {"args", args_json(args, r.step)}});
}

// Every span is also an NVTX range (GPU builds), traced steps or not, so Nsight Systems shows the
// same forward / backward / optimizer structure over its own CUDA timeline.
void set_device_timeline(DeviceTimeline* timeline) {
  std::lock_guard<std::mutex> lock(recorder().mu);
  recorder().timeline = timeline;
}

DeviceTimeline* device_timeline() {
  Recorder& r = recorder();
  return r.on && r.device_streams ? r.timeline : nullptr;
}

void device_event(std::string name, const char* category, const std::string& row, int begin, int end, Args args) {
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mu);
  r.rows.emplace(row, static_cast<int>(r.rows.size()));
  r.device_events.push_back({std::move(name), category, row, begin, end, std::move(args), r.step});
}

Span::Span(const char* category, std::string name, Args args) : on_(recording()), category_(category) {
#if LLAMATRON_HAVE_CUDA
  nvtxRangePushA(name.c_str());
#endif
  if (!on_) return;
  name_ = std::move(name), args_ = std::move(args);
  t0_ = now_us();
  if (DeviceTimeline* d = device_timeline()) device_mark_ = d->mark(nullptr);
}

Span::~Span() {
#if LLAMATRON_HAVE_CUDA
  nvtxRangePop();
#endif
  if (!on_) return;
  if (DeviceTimeline* d = device_timeline(); d && device_mark_ >= 0)
    device_event(name_, category_, "stream compute", device_mark_, d->mark(nullptr), args_);
  event(std::move(name_), category_, "compute", t0_, now_us(), std::move(args_));
}

void write(const std::string& path, Communicator& world) {
  Recorder& r = recorder();
  std::string mine;  // this rank's events, comma-separated, pid = its rank
  {
    // The device's spans: their marks' times, now that the device has passed them.
    const std::vector<double> at = r.timeline && !r.device_events.empty() ? r.timeline->resolve() : std::vector<double>{};
    std::lock_guard<std::mutex> lock(r.mu);
    for (Recorder::DeviceEvent& e : r.device_events) {
      if (e.begin < 0 || e.end < 0 || static_cast<size_t>(std::max(e.begin, e.end)) >= at.size()) continue;
      const int tid = r.rows.at(e.row);
      r.events.push_back({{"name", std::move(e.name)},
                          {"cat", e.category},
                          {"ph", "X"},
                          {"ts", std::max(0.0, at[e.begin] - r.origin_us)},
                          {"dur", std::max(0.0, at[e.end] - std::max(at[e.begin], r.origin_us))},
                          {"tid", tid},
                          {"args", args_json(e.args, e.step)}});
    }
    r.device_events.clear();
    const int pid = world.rank();
    const auto add = [&](nlohmann::json e) {
      e["pid"] = pid;
      mine += (mine.empty() ? "" : ",\n") + e.dump();
    };
    add({{"name", "process_name"}, {"ph", "M"}, {"args", {{"name", "rank " + std::to_string(pid)}}}});
    add({{"name", "process_sort_index"}, {"ph", "M"}, {"args", {{"sort_index", pid}}}});
    for (const auto& [row, tid] : r.rows) add({{"name", "thread_name"}, {"ph", "M"}, {"tid", tid}, {"args", {{"name", row}}}});
    for (nlohmann::json& e : r.events) add(std::move(e));
    r.events.clear();
  }
  const auto file = [](const std::string& events) { return "{\"traceEvents\": [\n" + events + "\n], \"displayTimeUnit\": \"ms\"}\n"; };
  if (const size_t at = path.find("{rank}"); at != std::string::npos) {
    std::string mine_path = path;
    mine_path.replace(at, 6, std::to_string(world.rank()));
    fail_together(world, "logging.trace_file", [&] { write_file_durably(mine_path, file(mine)); });
    return;
  }
  // One file: every rank's events travel to rank 0 (as 4-byte words: padded with spaces).
  mine.resize((mine.size() + 3) / 4 * 4, ' ');
  std::vector<int32_t> words(world.size());
  const int32_t my_words = static_cast<int32_t>(mine.size() / 4);
  world.all_gather(&my_words, words.data(), 1, DType::I32);
  std::vector<std::string> parts(world.size());
  std::vector<Communicator::Transfer> transfers;
  if (world.rank() == 0) {
    parts[0] = mine;
    for (int q = 1; q < world.size(); ++q) {
      parts[q].resize(static_cast<size_t>(words[q]) * 4);
      transfers.push_back({Communicator::Transfer::Recv, q, parts[q].data(), words[q], DType::I32});
    }
  } else {
    transfers.push_back({Communicator::Transfer::Send, 0, mine.data(), my_words, DType::I32});
  }
  world.send_recv(transfers);
  fail_together(world, "logging.trace_file", [&] {
    if (world.rank() != 0) return;
    std::string all;
    for (const std::string& p : parts) all += (all.empty() ? "" : ",\n") + p;
    write_file_durably(path, file(all));
  });
}

}  // namespace llamatron::trace
