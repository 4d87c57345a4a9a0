// The step timeline (logging.trace_file, docs/parallelism.md "Reading a trace"): Chrome-trace /
// Perfetto JSON complete events ("ph": "X") of the steps logging.trace_steps names: forward and
// backward per layer and micro-batch, the optimizer, every collective from issue to completion
// (category comm, on its group's row) and every wait on one (category wait, on the compute row).
// Outside the traced steps recording is off and costs one branch per event.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace llamatron {

class Communicator;

namespace trace {

double now_us();  // steady clock, microseconds (the time base of every event)
bool recording();
// Starts recording for `step` (the events' args.step); the first start aligns this rank's time
// origin with the others' (a barrier over `world`), so one file shows every rank on one axis.
// device_streams: also record the spans on the device's own streams (train.device=cuda).
void start(int64_t step, Communicator& world, bool device_streams = false);
void stop();

// Numbers and strings an event carries in args (group, bytes, layer, micro_batch, ...).
struct Arg {
  std::string key;
  std::string text;  // when not empty, the value is this string...
  double number = 0; // ...else this number
};
using Args = std::vector<Arg>;
inline Arg arg(std::string key, double v) { return {std::move(key), "", v}; }
inline Arg arg(std::string key, std::string v) { return {std::move(key), std::move(v), 0}; }

// A device's own timeline: marks (events) recorded on its streams, turned into times when the
// trace is written. The CUDA backend provides one while it lives (the GPU's events, or the
// emulated device's); `stream` is the runtime's handle (nullptr: the compute stream).
class DeviceTimeline {
 public:
  virtual ~DeviceTimeline() = default;
  virtual int mark(void* stream) = 0;  // an event recorded on `stream` now; its id
  // Every mark's time, in now_us() time, by id (it waits for the device); then forgets them.
  virtual std::vector<double> resolve() = 0;
};
void set_device_timeline(DeviceTimeline* timeline);
DeviceTimeline* device_timeline();  // while recording device streams; nullptr otherwise
// A span on a device stream's row ("stream compute", "stream comm 1"), between two marks.
void device_event(std::string name, const char* category, const std::string& row, int begin, int end, Args args = {});

// One complete event on row `row` ("compute", "comm dp", ...) over [t0, t1] (now_us() time).
void event(std::string name, const char* category, const std::string& row, double t0, double t1, Args args = {});

// An event on the compute row from construction to destruction (when recording).
class Span {
 public:
  Span(const char* category, std::string name, Args args = {});
  ~Span();
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  bool on_;
  const char* category_;
  std::string name_;
  Args args_;
  double t0_ = 0;
  int device_mark_ = -1;  // the span's start on the device's compute stream, when recording it
};

// Writes what was recorded and clears it. Collective over `world`: one file holding every rank
// (pid = rank) at `path`, written by rank 0; or, when `path` contains "{rank}", one file per rank
// with the rank in its name.
void write(const std::string& path, Communicator& world);

}  // namespace trace
}  // namespace llamatron
