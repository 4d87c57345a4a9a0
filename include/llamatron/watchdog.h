// Nothing hangs (docs/launching.md, "When something fails"): every wait on a collective or a
// pipeline transfer has a deadline. A thread checks the deadlines; when one passes, the rank logs
// what it waited for (the collective, its group, the ranks and hosts of that group, the step) and
// ends the whole job, so a link that goes down without a process dying is an error in minutes, not
// a hang forever. Off (timeout 0) until the trainer configures it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace llamatron::watchdog {

// The exit status of a rank the watchdog ended (the supervisor tells it from a crash by it).
constexpr int kExitCode = 75;

// parallel.comm_timeout_s for the steps after the first; the first step (and the set-up before it)
// gets first_step_factor times as long: it builds buffers, connects every pair of ranks, and on
// GPUs compiles kernels. 0: no deadlines.
void configure(double timeout_s, double first_step_factor);
// The step the trainer is in (0: set-up), for the message and for the deadline of the first step.
void set_step(int64_t step);
// Where the job's ranks run (the placement map's hosts), added to the message of a wait whose group
// is not named with its hosts (the world's, at the MPI level).
void set_job(std::string hosts);
// Runs before the job ends on a passed deadline (NCCL: abort the communicators, so no kernel waits
// on a peer that is gone).
void on_expiry(std::function<void()> hook);

// A deadline on a wait that blocks this thread: armed in the constructor, disarmed in the
// destructor. describe() says what the wait is for; it is only called when the deadline passes.
class Watch {
 public:
  explicit Watch(std::function<std::string()> describe);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

 private:
  uint64_t id_ = 0;
};

// A deadline on work that completes without anyone blocking on it (a GPU collective on its
// stream): done() is polled from the watchdog's thread until it returns true or the deadline passes.
void watch_async(std::function<bool()> done, std::function<std::string()> describe);

// Seconds between the watchdog's checks (tests).
double poll_interval_s();

}  // namespace llamatron::watchdog
