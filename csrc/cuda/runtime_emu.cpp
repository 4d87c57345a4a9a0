// The emulated device runtime: device memory is host memory. The default stream (where the
// backend's kernels run, eagerly, in the kernel emulator) runs each operation when it is issued.
// Every created stream is an in-order queue (docs/kernels.md, "Streams and events in the
// emulator"): a host function on it, and everything issued behind anything still pending, waits
// until something synchronises with that point (an event wait, an event or stream synchronise, a
// device synchronise, the stream's destruction). A copy or memset issued to an idle stream runs at
// once, as an idle GPU stream would start it. So work that a GPU may finish at any later time
// (a collective behind a host function) finishes as late as it legally can, and a consumer that
// forgot to wait for it reads what was there before. Events mark a point in their stream's queue
// and record the host time at which that point passed.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/runtime.h"
#include "llamatron/errors.h"

namespace llamatron::rt {
namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uintptr_t id_of(const void* handle) { return reinterpret_cast<uintptr_t>(handle); }

// What deferred work threw, as the Error the synchronising call throws.
[[noreturn]] void rethrow_as_error(const std::exception_ptr& err) {
  try {
    std::rethrow_exception(err);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string("work on an emulated stream failed: ") + e.what());
  }
}

class EmulatedRuntime final : public Runtime {
 public:
  std::string name() const override { return "emulated"; }
  int device_count() override { return 1; }
  DeviceProps properties(int device) override {
    if (device != 0) throw Error("emulated runtime: no device " + std::to_string(device) + " (there is one, device 0)");
    return {"emulated CUDA device (CPU)", 90, 1, 0, 227 * 1024};
  }
  void* malloc(size_t bytes) override {
    const size_t held = (bytes + 255) / 256 * 256 + 256;  // cudaMalloc aligns to 256
    void* p = std::aligned_alloc(256, held);
    if (!p) throw Error("emulated cudaMalloc of " + std::to_string(bytes) + " bytes failed: out of host memory");
    // cudaMalloc's memory is not zeroed: poison it as the kernel emulator poisons shared memory
    // (0xFF bytes, NaN in bf16 and fp32), so code that reads before writing fails here too.
    std::memset(p, 0xFF, bytes);
    std::lock_guard<std::mutex> lock(mu_);
    allocations_[id_of(p)] = held;
    return p;
  }
  void free(void* ptr) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (!allocations_.erase(id_of(ptr))) throw Error("emulated cudaFree of a pointer that is not a live device allocation (double free?)");
    std::free(ptr);
  }
  bool is_device_pointer(const void* ptr) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = allocations_.upper_bound(id_of(ptr));
    if (it == allocations_.begin()) return false;
    --it;
    return id_of(ptr) < it->first + it->second;
  }
  void memcpy(void* dst, const void* src, size_t bytes, Copy) override { std::memmove(dst, src, bytes); }
  void memcpy_async(void* dst, const void* src, size_t bytes, Copy, Stream stream) override {
    enqueue(stream, [=] { std::memmove(dst, src, bytes); }, false);
  }
  void memset(void* ptr, int value, size_t bytes) override { std::memset(ptr, value, bytes); }
  void memset_async(void* ptr, int value, size_t bytes, Stream stream) override {
    enqueue(stream, [=] { std::memset(ptr, value, bytes); }, false);
  }
  void launch_host_func(Stream stream, std::function<void()> fn) override { enqueue(stream, std::move(fn), true); }

  Stream stream_create() override {
    std::lock_guard<std::mutex> lock(mu_);
    streams_[++next_handle_] = std::make_unique<StreamState>();
    return reinterpret_cast<Stream>(next_handle_);
  }
  // cudaStreamDestroy returns at once and the stream's pending work still completes: here it
  // completes first, and what it threw is thrown after the stream is gone.
  void stream_destroy(Stream stream) override {
    uint64_t issued = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stream || !streams_.count(id_of(stream))) throw Error("emulated cudaStreamDestroy of an unknown stream");
      issued = streams_[id_of(stream)]->issued;
    }
    std::exception_ptr first;
    for (;;) {
      try {
        drain(id_of(stream), issued);
        break;
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      streams_.erase(id_of(stream));  // events recorded on it have passed: complete from now on
    }
    if (first) std::rethrow_exception(first);
  }
  void stream_synchronize(Stream stream) override {
    uint64_t issued = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stream) return;  // the default stream ran its work when it was issued
      issued = state(stream).issued;
    }
    drain(id_of(stream), issued);
  }
  void stream_wait_event(Stream stream, Event event) override {
    uintptr_t on = 0;
    uint64_t position = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stream) (void)state(stream);
      const EventState& e = event_state(event);
      if (complete(e)) return;
      on = e.stream, position = e.position;  // the point recorded now, even if the event is re-recorded later
    }
    if (!stream) return drain(on, position);                   // the default stream is eager: wait now
    if (id_of(stream) == on) return;                            // its own earlier point: in order already
    enqueue(stream, [this, on, position] { drain(on, position); }, true);  // blocks `stream` until then
  }

  Event event_create() override {
    std::lock_guard<std::mutex> lock(mu_);
    events_[++next_handle_] = EventState{};
    return reinterpret_cast<Event>(next_handle_);
  }
  void event_destroy(Event event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!events_.erase(id_of(event))) throw Error("emulated cudaEventDestroy of an unknown event");
  }
  void event_record(Event event, Stream stream) override {
    uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      EventState& e = event_state(event);
      if (stream) (void)state(stream);
      generation = ++e.generation;
      e.recorded = true;
      e.stream = id_of(stream);
      e.position = 0;
      e.time_ms = stream ? -1.0 : now_ms();
      if (!stream) return;
    }
    // A marker in the stream's queue: the event completes when the stream has run up to it.
    enqueue(
        stream,
        [this, event, generation] {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = events_.find(id_of(event));
          if (it != events_.end() && it->second.generation == generation) it->second.time_ms = now_ms();
        },
        false, [&](uint64_t position) {
          EventState& e = event_state(event);
          if (e.generation == generation) e.position = position;
        });
  }
  void event_synchronize(Event event) override {
    uintptr_t on = 0;
    uint64_t position = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const EventState& e = event_state(event);
      if (complete(e)) return;
      on = e.stream, position = e.position;
    }
    drain(on, position);
    std::lock_guard<std::mutex> lock(mu_);
    if (!complete(event_state(event)))
      throw Error("emulated cudaEventSynchronize cannot reach the event: work on its stream waits on that stream itself");
  }
  float event_elapsed_ms(Event start, Event end) override {
    std::lock_guard<std::mutex> lock(mu_);
    const EventState &a = event_state(start), &b = event_state(end);
    if (!a.recorded || !b.recorded) throw Error("emulated cudaEventElapsedTime on an event that was never recorded");
    if (!complete(a) || !complete(b) || a.time_ms < 0 || b.time_ms < 0)
      throw Error("emulated cudaEventElapsedTime on an event that has not completed (cudaErrorNotReady): synchronise with it first");
    return static_cast<float>(b.time_ms - a.time_ms);
  }
  void device_synchronize() override {
    for (uint64_t before = completed_total();;) {  // work that runs may issue more, to any stream
      std::vector<std::pair<uintptr_t, uint64_t>> pending;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [id, s] : streams_)
          if (s->completed < s->issued && !s->running) pending.emplace_back(id, s->issued);
      }
      if (pending.empty()) return;
      for (const auto& [id, issued] : pending) drain(id, issued);
      const uint64_t after = completed_total();
      if (after == before) return;  // only work that waits on itself is left (called from inside it)
      before = after;
    }
  }

 private:
  struct StreamState {
    std::deque<std::function<void()>> queue;  // issued, not yet run, in order
    uint64_t issued = 0;                      // operations ever issued to the stream
    uint64_t completed = 0;                   // of those, how many have run
    bool running = false;                     // one of them runs now
  };
  struct EventState {
    bool recorded = false;
    uintptr_t stream = 0;    // where it was last recorded (0: the default stream)
    uint64_t position = 0;   // complete once that stream's `completed` reaches it
    uint64_t generation = 0; // records so far: a marker of an earlier record does not set the time
    double time_ms = -1;     // host time its point passed
  };

  uint64_t completed_total() {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t n = 0;
    for (const auto& [id, s] : streams_) n += s->completed;
    return n;
  }
  StreamState& state(Stream stream) {  // mu_ held
    auto it = streams_.find(id_of(stream));
    if (it == streams_.end()) throw Error("emulated runtime: unknown or destroyed stream");
    return *it->second;
  }
  EventState& event_state(Event event) {  // mu_ held
    auto it = events_.find(id_of(event));
    if (it == events_.end()) throw Error("emulated runtime: unknown or destroyed event");
    return it->second;
  }
  bool complete(const EventState& e) const {  // mu_ held; a destroyed stream ran everything first
    if (!e.recorded || e.stream == 0) return true;
    auto it = streams_.find(e.stream);
    return it == streams_.end() || it->second->completed >= e.position;
  }

  // Issues `fn` to `stream`: on the default stream it runs now; on a created one it runs now only
  // when the stream is idle and `always_defer` is false, else it joins the queue. `at_position`
  // (under the lock) learns its position in the stream.
  void enqueue(Stream stream, std::function<void()> fn, bool always_defer,
               const std::function<void(uint64_t)>& at_position = {}) {
    if (!stream) return fn();
    const uintptr_t id = id_of(stream);
    {
      std::lock_guard<std::mutex> lock(mu_);
      StreamState& s = state(stream);
      const uint64_t position = ++s.issued;
      if (at_position) at_position(position);
      if (always_defer || !s.queue.empty() || s.running) {
        s.queue.push_back(std::move(fn));
        return;
      }
      s.running = true;
    }
    run_one(id, fn);
  }

  // Runs the stream's queue until `upto` operations have completed (or it is empty).
  void drain(uintptr_t id, uint64_t upto) {
    std::lock_guard<std::recursive_mutex> draining(drain_mu_);
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = streams_.find(id);
        if (it == streams_.end()) return;  // destroyed: its work ran then
        StreamState& s = *it->second;
        if (s.completed >= upto || s.queue.empty() || s.running) return;
        fn = std::move(s.queue.front());
        s.queue.pop_front();
        s.running = true;
      }
      run_one(id, fn);
    }
  }

  void run_one(uintptr_t id, const std::function<void()>& fn) {
    std::exception_ptr err;
    try {
      fn();
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = streams_.find(id);
      if (it != streams_.end()) {
        it->second->running = false;
        ++it->second->completed;  // a failed operation is over too; the error goes to the caller
      }
    }
    if (err) rethrow_as_error(err);
  }

  std::mutex mu_;                     // the tables below
  std::recursive_mutex drain_mu_;     // one drainer at a time (work it runs may synchronise again)
  std::map<uintptr_t, size_t> allocations_;  // base -> bytes held, ordered for is_device_pointer
  std::unordered_map<uintptr_t, std::unique_ptr<StreamState>> streams_;
  std::unordered_map<uintptr_t, EventState> events_;
  uintptr_t next_handle_ = 0;
};

}  // namespace

std::unique_ptr<Runtime> make_emulated_runtime() { return std::make_unique<EmulatedRuntime>(); }

}  // namespace llamatron::rt
