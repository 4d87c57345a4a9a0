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
void start(int64_t step, Communicator& world);
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
};

// Writes what was recorded and clears it. Collective over `world`: one file holding every rank
// (pid = rank) at `path`, written by rank 0; or, when `path` contains "{rank}", one file per rank
// with the rank in its name.
void write(const std::string& path, Communicator& world);

}  // namespace trace
}  // namespace llamatron
