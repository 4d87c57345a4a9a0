#include "cuda/comm_nccl.h"

#include "cuda/check.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <mutex>
#include <string>

#include "llamatron/errors.h"
#include "llamatron/trace.h"
#include "llamatron/watchdog.h"

#define LT_NCCL(call) ::llamatron::cuda::check_nccl((call), #call, __FILE__, __LINE__)
#define LT_CUDA_CALL(call) ::llamatron::cuda::check_cuda((call), #call, __FILE__, __LINE__)

namespace llamatron::cuda {
namespace {

void check_nccl(ncclResult_t r, const char* call, const char* file, int line) {
  if (r != ncclSuccess) throw_failed_call(call, std::string(ncclGetErrorString(r)) + "; NCCL_DEBUG=INFO says more", file, line);
}

void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess) throw_failed_call(call, cudaGetErrorString(e), file, line);
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::I32: return ncclInt32;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? ncclSum : op == ReduceOp::Max ? ncclMax : ncclAvg; }

bool on_device(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();  // an unregistered host pointer: clear the error
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

bool equal(const std::vector<int64_t>& counts) {
  for (int64_t c : counts)
    if (c != counts.front()) return false;
  return true;
}

// A collective on the group's communication stream: waiting makes the compute stream wait for its
// event (the host goes on).
using Event = std::shared_ptr<CUevent_st>;  // destroyed when the work and the watchdog are done with it (safe once waits are enqueued)

class NcclWork final : public PendingWork {
 public:
  NcclWork(Event done, cudaStream_t compute) : done_(std::move(done)), compute_(compute) {}
  void wait() override { LT_CUDA_CALL(cudaStreamWaitEvent(compute_, done_.get(), 0)); }
  double completed_us() const override { return 0; }  // known on the GPU only

 private:
  Event done_;
  cudaStream_t compute_;
};

// The communicator as the watchdog's thread sees it: polled for asynchronous errors (a peer gone,
// a network failure: NCCL reports them here instead of hanging), aborted when a deadline passes,
// so no kernel keeps waiting on a peer that is gone; null once destroyed or aborted.
struct LiveComm {
  std::mutex mu;
  ncclComm_t comm = nullptr;
};

// Each group has its own communication stream (ARCHITECTURE.md; docs/parallelism.md "Overlap"): a
// collective waits for an event recorded on the compute stream when it is issued (its inputs are
// written by then, in stream order), runs on the group's stream, and records the event its
// consumer waits on. Nothing blocks the host.
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, rt::Stream compute)
      : host_(std::move(host)), compute_(static_cast<cudaStream_t>(compute)) {
    ncclUniqueId id{};
    if (host_->rank() == 0) LT_NCCL(ncclGetUniqueId(&id));
    static_assert(sizeof(id) % 4 == 0, "the unique id travels as int32 words");
    host_->broadcast(&id, sizeof(id) / 4, DType::I32, 0);
    LT_NCCL(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()));
    live_->comm = comm_;
    watchdog::on_expiry([live = live_] {
      std::lock_guard<std::mutex> lock(live->mu);
      if (live->comm) ncclCommAbort(live->comm);
      live->comm = nullptr;
    });
    // Non-blocking: no implicit synchronisation with the legacy default stream the kernels use.
    LT_CUDA_CALL(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclCommunicator() override {
    cudaStreamSynchronize(stream_);
    std::lock_guard<std::mutex> lock(live_->mu);
    if (live_->comm) ncclCommDestroy(comm_);
    live_->comm = nullptr;
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  Handle all_reduce_async(void* buf, int64_t n, DType t, ReduceOp op) override {
    if (!on_device(buf)) return host_->all_reduce_async(buf, n, t, op);
    return issue("all_reduce", [&] { LT_NCCL(ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), comm_, stream_)); });
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override { host_->all_reduce(v, n, op); }
  Handle reduce_scatter_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t, ReduceOp op) override {
    if (!on_device(recv) && !on_device(send)) return host_->reduce_scatter_async(send, recv, counts, t, op);
    return issue("reduce_scatter", [&] {
      if (equal(counts)) return LT_NCCL(ncclReduceScatter(send, recv, counts[0], nccl_type(t), nccl_op(op), comm_, stream_));
      // Unequal chunks (a bucket across ZeRO-1 shard boundaries): one reduce to each chunk's owner.
      LT_NCCL(ncclGroupStart());
      int64_t at = 0;
      for (int r = 0; r < size(); ++r) {
        const char* chunk = static_cast<const char*>(send) + at * static_cast<int64_t>(dtype_size(t));
        if (counts[r] > 0) LT_NCCL(ncclReduce(chunk, recv, counts[r], nccl_type(t), nccl_op(op), r, comm_, stream_));
        at += counts[r];
      }
      LT_NCCL(ncclGroupEnd());
    });
  }
  Handle all_gather_async(const void* send, void* recv, const std::vector<int64_t>& counts, DType t) override {
    if (!on_device(recv)) return host_->all_gather_async(send, recv, counts, t);
    return issue("all_gather", [&] {
      if (equal(counts)) return LT_NCCL(ncclAllGather(send, recv, counts[0], nccl_type(t), comm_, stream_));
      LT_NCCL(ncclGroupStart());  // each rank's chunk broadcast from it
      int64_t at = 0;
      for (int r = 0; r < size(); ++r) {
        char* chunk = static_cast<char*>(recv) + at * static_cast<int64_t>(dtype_size(t));
        if (counts[r] > 0) LT_NCCL(ncclBroadcast(r == rank() ? send : chunk, chunk, counts[r], nccl_type(t), r, comm_, stream_));
        at += counts[r];
      }
      LT_NCCL(ncclGroupEnd());
    });
  }
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    if (!on_device(buf)) return host_->broadcast(buf, n, t, root);
    issue("broadcast", [&] { LT_NCCL(ncclBroadcast(buf, buf, n, nccl_type(t), root, comm_, stream_)); }).wait();
  }
  Handle send_recv_async(const std::vector<Transfer>& transfers) override {
    if (transfers.empty()) return {};
    if (!on_device(transfers.front().buf)) return host_->send_recv_async(transfers);
    return issue("send_recv", [&] {
      LT_NCCL(ncclGroupStart());  // issued together: no ordering deadlock between the pairs
      for (const Transfer& x : transfers) {
        if (x.kind == Transfer::Send)
          LT_NCCL(ncclSend(x.buf, x.n, nccl_type(x.dtype), x.peer, comm_, stream_));
        else
          LT_NCCL(ncclRecv(x.buf, x.n, nccl_type(x.dtype), x.peer, comm_, stream_));
      }
      LT_NCCL(ncclGroupEnd());
    });
  }
  void barrier() override {
    LT_CUDA_CALL(cudaStreamSynchronize(stream_));
    LT_CUDA_CALL(cudaStreamSynchronize(compute_));
    host_->barrier();
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<NcclCommunicator>(host_->split(color, key), compute_);
  }

 private:
  template <typename Enqueue>
  Handle issue(const char* what, Enqueue enqueue) {
    cudaEvent_t ready = nullptr, done = nullptr;
    LT_CUDA_CALL(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    LT_CUDA_CALL(cudaEventRecord(ready, compute_));  // the inputs, as the compute stream wrote them
    LT_CUDA_CALL(cudaStreamWaitEvent(stream_, ready, 0));
    cudaEventDestroy(ready);
    trace::DeviceTimeline* timeline = trace::device_timeline();  // the collective on its stream's row
    const int begin = timeline ? timeline->mark(stream_) : -1;
    enqueue();
    if (timeline) trace::device_event(what, "comm", row_, begin, timeline->mark(stream_));
    LT_CUDA_CALL(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    const Event event(done, [](cudaEvent_t e) { cudaEventDestroy(e); });
    LT_CUDA_CALL(cudaEventRecord(done, stream_));
    // The host never blocks on a collective here: the watchdog polls its event (and the
    // communicator's asynchronous error) against the deadline instead.
    watchdog::watch_async(
        [event, live = live_] {
          std::lock_guard<std::mutex> lock(live->mu);
          if (!live->comm) return true;
          ncclResult_t async = ncclSuccess;
          if (ncclCommGetAsyncError(live->comm, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress)
            throw Error(std::string("NCCL reports ") + ncclGetErrorString(async));
          return cudaEventQuery(event.get()) == cudaSuccess;
        },
        [what, n = size(), r = rank()] { return std::string("NCCL ") + what + " (rank " + std::to_string(r) + " of a group of " +
                                                std::to_string(n) + ")"; });
    return Handle(std::make_unique<NcclWork>(event, compute_));
  }
  std::unique_ptr<Communicator> host_;
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::shared_ptr<LiveComm> live_ = std::make_shared<LiveComm>();
  std::string row_ = "stream comm " + std::to_string(++groups_made_);  // its row in a trace
  static inline int groups_made_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, rt::Stream stream) {
  return std::make_unique<NcclCommunicator>(std::move(host), stream);
}

}  // namespace llamatron::cuda
