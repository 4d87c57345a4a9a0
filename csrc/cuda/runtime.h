// The device runtime the CUDA backend's host code calls — memory, copies, streams, events, device
// properties — behind one interface with two implementations: the real CUDA runtime (GPU builds)
// and an emulated one (host memory; the default stream runs its work at issue, every created
// stream is an in-order queue whose work waits until something synchronises with it), so the
// backend's host code runs end to end on a CPU under the kernel emulator, and a missing event
// wait reads what a GPU could have read (docs/kernels.md, "Streams and events in the emulator").
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace llamatron::rt {

enum class Copy { HostToDevice, DeviceToHost, DeviceToDevice, HostToHost };

struct DeviceProps {
  std::string name;
  int sm = 0;  // compute capability, e.g. 90
  int multiprocessors = 0;
  size_t global_mem_bytes = 0;
  size_t smem_per_block_optin_bytes = 0;
};

using Stream = void*;  // opaque handles; nullptr is the default stream
using Event = void*;

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual std::string name() const = 0;
  virtual int device_count() = 0;
  virtual DeviceProps properties(int device) = 0;
  virtual void* malloc(size_t bytes) = 0;
  virtual void free(void* ptr) = 0;
  virtual void memcpy(void* dst, const void* src, size_t bytes, Copy kind) = 0;
  virtual void memcpy_async(void* dst, const void* src, size_t bytes, Copy kind, Stream stream) = 0;
  virtual void memset(void* ptr, int value, size_t bytes) = 0;
  virtual void memset_async(void* ptr, int value, size_t bytes, Stream stream) = 0;
  // A stream that does not synchronise implicitly with the default stream (cudaStreamNonBlocking):
  // order between them takes events. Destroying it lets its pending work complete first.
  virtual Stream stream_create() = 0;
  virtual void stream_destroy(Stream stream) = 0;
  virtual void stream_synchronize(Stream stream) = 0;
  // Work issued to `stream` after this waits until `event`'s last recorded point has passed
  // (cudaStreamWaitEvent; an event never recorded is no wait).
  virtual void stream_wait_event(Stream stream, Event event) = 0;
  // Runs `fn` on the host when the stream reaches this point (cudaLaunchHostFunc). On a GPU `fn`
  // must not call the CUDA runtime. What it throws is thrown by the next call that synchronises
  // with it (the emulator: the call that made it run; a GPU: the next *_synchronize).
  virtual void launch_host_func(Stream stream, std::function<void()> fn) = 0;
  virtual Event event_create() = 0;
  virtual void event_destroy(Event event) = 0;
  virtual void event_record(Event event, Stream stream) = 0;
  virtual void event_synchronize(Event event) = 0;
  virtual float event_elapsed_ms(Event start, Event end) = 0;
  virtual void device_synchronize() = 0;
  // Inside a live device allocation (cudaPointerGetAttributes: device or managed memory).
  virtual bool is_device_pointer(const void* ptr) = 0;
};

// The emulated device: always available. Invalid frees and unknown handles are errors.
std::unique_ptr<Runtime> make_emulated_runtime();
// The CUDA runtime, or nullptr with `why` set when this build has no CUDA or no usable device.
std::unique_ptr<Runtime> make_cuda_runtime(std::string* why);

}  // namespace llamatron::rt
