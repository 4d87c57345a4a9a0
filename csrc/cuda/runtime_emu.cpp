// The emulated device runtime: device memory is host memory, and streams are in-order queues that
// run each operation as it is issued, so every copy or kernel launched on a stream has finished
// when the call returns. Events record the host time at which their point in the stream passed.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <unordered_map>

#include "cuda/runtime.h"
#include "llamatron/errors.h"

namespace llamatron::rt {
namespace {

class EmulatedRuntime final : public Runtime {
 public:
  std::string name() const override { return "emulated"; }
  int device_count() override { return 1; }
  DeviceProps properties(int device) override {
    if (device != 0) throw Error("emulated runtime: no device " + std::to_string(device) + " (there is one, device 0)");
    return {"emulated CUDA device (CPU)", 90, 1, 0, 227 * 1024};
  }
  void* malloc(size_t bytes) override {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);  // cudaMalloc aligns to 256
    if (!p) throw Error("emulated cudaMalloc of " + std::to_string(bytes) + " bytes failed: out of host memory");
    // cudaMalloc's memory is not zeroed: poison it as the kernel emulator poisons shared memory
    // (0xFF bytes, NaN in bf16 and fp32), so code that reads before writing fails here too.
    std::memset(p, 0xFF, bytes);
    std::lock_guard<std::mutex> lock(mu_);
    allocations_.insert(p);
    return p;
  }
  void free(void* ptr) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (!allocations_.erase(ptr)) throw Error("emulated cudaFree of a pointer that is not a live device allocation (double free?)");
    std::free(ptr);
  }
  void memcpy(void* dst, const void* src, size_t bytes, Copy) override { std::memmove(dst, src, bytes); }
  void memcpy_async(void* dst, const void* src, size_t bytes, Copy kind, Stream stream) override {
    check_stream(stream);
    memcpy(dst, src, bytes, kind);
  }
  void memset(void* ptr, int value, size_t bytes) override { std::memset(ptr, value, bytes); }
  void memset_async(void* ptr, int value, size_t bytes, Stream stream) override {
    check_stream(stream);
    memset(ptr, value, bytes);
  }
  Stream stream_create() override {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.insert(++next_handle_);
    return reinterpret_cast<Stream>(next_handle_);
  }
  void stream_destroy(Stream stream) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!streams_.erase(reinterpret_cast<uintptr_t>(stream))) throw Error("emulated cudaStreamDestroy of an unknown stream");
  }
  void stream_synchronize(Stream stream) override { check_stream(stream); }  // work ran when issued
  Event event_create() override {
    std::lock_guard<std::mutex> lock(mu_);
    events_[++next_handle_] = -1.0;
    return reinterpret_cast<Event>(next_handle_);
  }
  void event_destroy(Event event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!events_.erase(reinterpret_cast<uintptr_t>(event))) throw Error("emulated cudaEventDestroy of an unknown event");
  }
  void event_record(Event event, Stream stream) override {
    check_stream(stream);
    const double now = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    event_time(event) = now;
  }
  void event_synchronize(Event event) override { (void)event_time(event); }
  float event_elapsed_ms(Event start, Event end) override {
    const double a = event_time(start), b = event_time(end);
    if (a < 0 || b < 0) throw Error("emulated cudaEventElapsedTime on an event that was never recorded");
    return static_cast<float>(b - a);
  }
  void device_synchronize() override {}

 private:
  void check_stream(Stream stream) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream && !streams_.count(reinterpret_cast<uintptr_t>(stream))) throw Error("emulated runtime: unknown or destroyed stream");
  }
  double& event_time(Event event) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = events_.find(reinterpret_cast<uintptr_t>(event));
    if (it == events_.end()) throw Error("emulated runtime: unknown or destroyed event");
    return it->second;
  }
  std::mutex mu_;
  std::set<void*> allocations_;
  std::set<uintptr_t> streams_;
  std::unordered_map<uintptr_t, double> events_;  // recorded time in ms, -1 until recorded
  uintptr_t next_handle_ = 0;
};

}  // namespace

std::unique_ptr<Runtime> make_emulated_runtime() { return std::make_unique<EmulatedRuntime>(); }

}  // namespace llamatron::rt
