#include "llamatron/watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace llamatron::watchdog {
namespace {

using Clock = std::chrono::steady_clock;

struct Entry {
  Clock::time_point deadline;
  std::function<std::string()> describe;
  std::function<bool()> done;  // empty: a blocking wait, removed by its Watch
};

// One per process: the deadlines, and the thread that checks them. Never destroyed (a wait may
// still be armed while static destructors run at exit).
class Dog {
 public:
  static Dog& get() {
    static Dog* dog = new Dog();
    return *dog;
  }

  void configure(double timeout_s, double factor) {
    std::lock_guard<std::mutex> lock(mu_);
    timeout_s_ = timeout_s, factor_ = std::max(1.0, factor);
    if (timeout_s_ > 0 && !thread_.joinable()) thread_ = std::thread([this] { loop(); });
    wake_.notify_all();
  }
  void set_step(int64_t step) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_step_ < 0 && step > 0) first_step_ = step;
    step_ = step;
  }
  void set_job(std::string hosts) {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = std::move(hosts);
  }
  uint64_t add(std::function<std::string()> describe, std::function<bool()> done) {
    std::lock_guard<std::mutex> lock(mu_);
    if (timeout_s_ <= 0) return 0;
    const uint64_t id = ++next_id_;
    entries_[id] = {Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(current_timeout())),
                    std::move(describe), std::move(done)};
    return id;
  }
  void remove(uint64_t id) {
    if (id == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    entries_.erase(id);
  }
  void hook(std::function<void()> h) {
    std::lock_guard<std::mutex> lock(mu_);
    hooks_.push_back(std::move(h));
  }
  double poll_s() {
    std::lock_guard<std::mutex> lock(mu_);
    return poll_interval();
  }

 private:
  // The set-up and the first step this process runs connect every pair of ranks and build every
  // buffer: they get factor_ times the deadline.
  double current_timeout() const { return (first_step_ < 0 || step_ <= first_step_) ? timeout_s_ * factor_ : timeout_s_; }
  double poll_interval() const { return std::clamp(timeout_s_ / 10, 0.05, 1.0); }

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait_for(lock, std::chrono::duration<double>(poll_interval()));
      const Clock::time_point now = Clock::now();
      std::vector<uint64_t> finished;
      for (auto& [id, e] : entries_) {
        std::string failure;
        if (e.done) {
          try {
            if (e.done()) {
              finished.push_back(id);
              continue;
            }
          } catch (const std::exception& ex) {
            failure = ex.what();
          }
        }
        if (failure.empty() && now < e.deadline) continue;
        const double waited = timeout_s_ > 0 ? std::chrono::duration<double>(now - e.deadline).count() + current_timeout() : 0;
        expire(e, failure, waited);  // does not return
      }
      for (uint64_t id : finished) entries_.erase(id);
    }
  }

  [[noreturn]] void expire(const Entry& e, const std::string& failure, double waited_s) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    std::string what;
    try {
      what = e.describe();
    } catch (const std::exception& ex) {
      what = std::string("(describing it failed: ") + ex.what() + ")";
    }
    if (!job_.empty() && what.find(" on ") == std::string::npos) what += " (the job: " + job_ + ")";
    const std::string when = step_ > 0 ? "in step " + std::to_string(step_) : "before the first step";
    if (failure.empty())
      std::fprintf(stderr,
                   "llamatron: error: watchdog: rank %s on %s waited %.0f s (parallel.comm_timeout_s) %s for %s; "
                   "a peer is down, unreachable or stopped: ending the job (raise parallel.comm_timeout_s if steps are that slow)\n",
                   rank ? rank : "0", host, waited_s, when.c_str(), what.c_str());
    else
      std::fprintf(stderr, "llamatron: error: watchdog: rank %s on %s %s: %s failed: %s; ending the job\n", rank ? rank : "0", host,
                   when.c_str(), what.c_str(), failure.c_str());
    std::fflush(stderr);
    std::fflush(stdout);
    for (const auto& h : hooks_) {
      try {
        h();
      } catch (...) {  // ending the job matters more than a hook that failed
      }
    }
    // Not MPI_Abort: the MPI thread may be inside the call that hangs. The launcher sees this rank
    // exit without finalising and ends the others (mpirun: within seconds).
    ::_exit(kExitCode);
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::thread thread_;
  std::map<uint64_t, Entry> entries_;
  std::vector<std::function<void()>> hooks_;
  double timeout_s_ = 0, factor_ = 1;
  int64_t step_ = 0, first_step_ = -1;
  std::string job_;
  uint64_t next_id_ = 0;
};

}  // namespace

void configure(double timeout_s, double first_step_factor) { Dog::get().configure(timeout_s, first_step_factor); }
void set_step(int64_t step) { Dog::get().set_step(step); }
void set_job(std::string hosts) { Dog::get().set_job(std::move(hosts)); }
void on_expiry(std::function<void()> hook) { Dog::get().hook(std::move(hook)); }
Watch::Watch(std::function<std::string()> describe) : id_(Dog::get().add(std::move(describe), {})) {}
Watch::~Watch() { Dog::get().remove(id_); }
void watch_async(std::function<bool()> done, std::function<std::string()> describe) {
  Dog::get().add(std::move(describe), std::move(done));
}
double poll_interval_s() { return Dog::get().poll_s(); }

}  // namespace llamatron::watchdog
