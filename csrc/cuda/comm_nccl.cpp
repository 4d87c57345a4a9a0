#include "cuda/comm_nccl.h"

#include "cuda/check.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "llamatron/errors.h"

#define LT_NCCL(call) ::llamatron::cuda::check_nccl((call), #call, __FILE__, __LINE__)

namespace llamatron::cuda {
namespace {

void check_nccl(ncclResult_t r, const char* call, const char* file, int line) {
  if (r != ncclSuccess) throw_failed_call(call, std::string(ncclGetErrorString(r)) + "; NCCL_DEBUG=INFO says more", file, line);
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

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, rt::Stream stream)
      : host_(std::move(host)), stream_(static_cast<cudaStream_t>(stream)) {
    ncclUniqueId id{};
    if (host_->rank() == 0) LT_NCCL(ncclGetUniqueId(&id));
    static_assert(sizeof(id) % 4 == 0, "the unique id travels as int32 words");
    host_->broadcast(&id, sizeof(id) / 4, DType::I32, 0);
    LT_NCCL(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()));
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  void all_reduce(void* buf, int64_t n, DType t, ReduceOp op) override {
    if (!on_device(buf)) return host_->all_reduce(buf, n, t, op);
    LT_NCCL(ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), comm_, stream_));
  }
  void all_reduce(double* v, int64_t n, ReduceOp op) override { host_->all_reduce(v, n, op); }
  void reduce_scatter(const void* send, void* recv, int64_t n, DType t, ReduceOp op) override {
    if (!on_device(recv)) return host_->reduce_scatter(send, recv, n, t, op);
    LT_NCCL(ncclReduceScatter(send, recv, n, nccl_type(t), nccl_op(op), comm_, stream_));
  }
  void all_gather(const void* send, void* recv, int64_t n, DType t) override {
    if (!on_device(recv)) return host_->all_gather(send, recv, n, t);
    LT_NCCL(ncclAllGather(send, recv, n, nccl_type(t), comm_, stream_));
  }
  void broadcast(void* buf, int64_t n, DType t, int root) override {
    if (!on_device(buf)) return host_->broadcast(buf, n, t, root);
    LT_NCCL(ncclBroadcast(buf, buf, n, nccl_type(t), root, comm_, stream_));
  }
  void send_recv(const std::vector<Transfer>& transfers) override {
    if (transfers.empty()) return;
    if (!on_device(transfers.front().buf)) return host_->send_recv(transfers);
    LT_NCCL(ncclGroupStart());  // issued together: no ordering deadlock between the pairs
    for (const Transfer& x : transfers) {
      if (x.kind == Transfer::Send)
        LT_NCCL(ncclSend(x.buf, x.n, nccl_type(x.dtype), x.peer, comm_, stream_));
      else
        LT_NCCL(ncclRecv(x.buf, x.n, nccl_type(x.dtype), x.peer, comm_, stream_));
    }
    LT_NCCL(ncclGroupEnd());
  }
  void barrier() override {
    cudaStreamSynchronize(stream_);
    host_->barrier();
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    return std::make_unique<NcclCommunicator>(host_->split(color, key), stream_);
  }

 private:
  std::unique_ptr<Communicator> host_;
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, rt::Stream stream) {
  return std::make_unique<NcclCommunicator>(std::move(host), stream);
}

}  // namespace llamatron::cuda
