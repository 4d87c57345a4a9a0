// The device runtime on the real CUDA runtime. Every call is checked; a failure becomes an Error
// naming the call, CUDA's message and where it was made.
#include <cuda_runtime.h>

#include <exception>
#include <mutex>

#include "cuda/check.h"
#include "cuda/runtime.h"
#include "llamatron/comm.h"
#include "llamatron/errors.h"

#define LT_CUDA(call) ::llamatron::rt::check_cuda((call), #call, __FILE__, __LINE__)

namespace llamatron::rt {
namespace {

void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess) cuda::throw_failed_call(call, cudaGetErrorString(err), file, line);
}

cudaMemcpyKind kind_of(Copy c) {
  switch (c) {
    case Copy::HostToDevice: return cudaMemcpyHostToDevice;
    case Copy::DeviceToHost: return cudaMemcpyDeviceToHost;
    case Copy::DeviceToDevice: return cudaMemcpyDeviceToDevice;
    case Copy::HostToHost: return cudaMemcpyHostToHost;
  }
  return cudaMemcpyDefault;
}

class CudaRuntime final : public Runtime {
  // A host function in flight: cudaLaunchHostFunc takes a plain pointer, so the std::function
  // lives on the heap until its callback has run.
  struct HostFunc {
    CudaRuntime* rt;
    std::function<void()> fn;
  };
  // Runs on CUDA's callback thread, which must not see an exception: what `fn` throws waits in
  // host_error_ for the next synchronising call.
  static void CUDART_CB run_host_func(void* arg) {
    std::unique_ptr<HostFunc> f(static_cast<HostFunc*>(arg));
    try {
      f->fn();
    } catch (const std::exception& e) {
      f->rt->keep_host_error(e.what());
    } catch (...) {
      f->rt->keep_host_error("a host function on a CUDA stream threw");
    }
  }
  void keep_host_error(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (host_error_.empty()) host_error_ = why;
  }
  void throw_host_error() {
    std::lock_guard<std::mutex> lock(mu_);
    if (host_error_.empty()) return;
    const std::string why = std::move(host_error_);
    host_error_.clear();
    throw Error(why);
  }
  std::mutex mu_;
  std::string host_error_;  // the first error a host function threw since the last synchronise

 public:
  ~CudaRuntime() override { (void)cudaDeviceSynchronize(); }  // no host function may outlive the runtime it reports to
  std::string name() const override { return "cuda"; }
  int device_count() override {
    int n = 0;
    LT_CUDA(cudaGetDeviceCount(&n));
    return n;
  }
  DeviceProps properties(int device) override {
    cudaDeviceProp p{};
    LT_CUDA(cudaGetDeviceProperties(&p, device));
    return {p.name, p.major * 10 + p.minor, p.multiProcessorCount, p.totalGlobalMem, p.sharedMemPerBlockOptin};
  }
  void* malloc(size_t bytes) override {
    void* p = nullptr;
    LT_CUDA(cudaMalloc(&p, bytes));
    return p;
  }
  void free(void* ptr) override { LT_CUDA(cudaFree(ptr)); }
  void memcpy(void* dst, const void* src, size_t bytes, Copy kind) override { LT_CUDA(cudaMemcpy(dst, src, bytes, kind_of(kind))); }
  void memcpy_async(void* dst, const void* src, size_t bytes, Copy kind, Stream s) override {
    LT_CUDA(cudaMemcpyAsync(dst, src, bytes, kind_of(kind), static_cast<cudaStream_t>(s)));
  }
  void memset(void* ptr, int value, size_t bytes) override { LT_CUDA(cudaMemset(ptr, value, bytes)); }
  void memset_async(void* ptr, int value, size_t bytes, Stream s) override {
    LT_CUDA(cudaMemsetAsync(ptr, value, bytes, static_cast<cudaStream_t>(s)));
  }
  Stream stream_create() override {
    cudaStream_t s = nullptr;
    LT_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }
  void stream_destroy(Stream s) override { LT_CUDA(cudaStreamDestroy(static_cast<cudaStream_t>(s))); }
  void stream_synchronize(Stream s) override {
    LT_CUDA(cudaStreamSynchronize(static_cast<cudaStream_t>(s)));
    throw_host_error();
  }
  void stream_wait_event(Stream s, Event e) override {
    LT_CUDA(cudaStreamWaitEvent(static_cast<cudaStream_t>(s), static_cast<cudaEvent_t>(e), 0));
  }
  void launch_host_func(Stream s, std::function<void()> fn) override {
    auto f = std::make_unique<HostFunc>(HostFunc{this, std::move(fn)});
    LT_CUDA(cudaLaunchHostFunc(static_cast<cudaStream_t>(s), run_host_func, f.get()));
    f.release();  // the callback owns it now
  }
  bool is_device_pointer(const void* p) override {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();  // not a pointer CUDA knows: clear the error
      return false;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
  }
  Event event_create() override {
    cudaEvent_t e = nullptr;
    LT_CUDA(cudaEventCreate(&e));
    return e;
  }
  void event_destroy(Event e) override { LT_CUDA(cudaEventDestroy(static_cast<cudaEvent_t>(e))); }
  void event_record(Event e, Stream s) override { LT_CUDA(cudaEventRecord(static_cast<cudaEvent_t>(e), static_cast<cudaStream_t>(s))); }
  void event_synchronize(Event e) override {
    LT_CUDA(cudaEventSynchronize(static_cast<cudaEvent_t>(e)));
    throw_host_error();
  }
  float event_elapsed_ms(Event a, Event b) override {
    float ms = 0;
    LT_CUDA(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a), static_cast<cudaEvent_t>(b)));
    return ms;
  }
  void device_synchronize() override {
    LT_CUDA(cudaDeviceSynchronize());
    throw_host_error();
  }
};

}  // namespace

std::unique_ptr<Runtime> make_cuda_runtime(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    if (why) *why = err != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(err) : "no CUDA device";
    return nullptr;
  }
  // One GPU per process: the node-local rank picks it (mpirun across nodes: each node counts from 0).
  const cudaError_t set = cudaSetDevice(node_local_rank() % n);
  if (set != cudaSuccess) {
    if (why) *why = std::string("cannot select a CUDA device: ") + cudaGetErrorString(set);
    return nullptr;
  }
  return std::make_unique<CudaRuntime>();
}

}  // namespace llamatron::rt
