// The CUDA backend: device memory from a caching pool, GEMMs through DeviceGemm, every other op
// through the CUDA kernels in kernels/. The same source serves the GPU (real runtime, cuBLASLt,
// nvcc-built kernels) and the emulated device (emulated runtime, CPU GEMM, the kernels run by the
// emulator); which one is decided by the factory a binary links (backend_emu.cpp here).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "cuda/caching_allocator.h"
#include "cuda/device_gemm.h"
#include "cuda/runtime.h"
#include "llamatron/backend.h"
#include "llamatron/trace.h"

namespace llamatron::cuda {

class CudaBackend final : public DeviceBackend {
 public:
  // Makes the device communicator of an MPI group on the compute stream (NCCL on GPUs, its
  // emulated stand-in on the emulated device, comm_emulated.h); empty: the MPI group itself.
  using GroupFactory = std::function<std::unique_ptr<Communicator>(std::unique_ptr<Communicator>, rt::Stream)>;
  CudaBackend(std::unique_ptr<rt::Runtime> runtime, std::unique_ptr<DeviceGemm> gemm, GroupFactory groups = {});
  ~CudaBackend() override;

  Allocator& allocator() override { return alloc_; }
  rt::Runtime& runtime() { return *rt_; }
  const CachingDeviceAllocator& pool() const { return alloc_; }
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override;
  void zero(void* ptr, size_t bytes) override;
  void set_deterministic(bool on) override { deterministic_ = on; }
  std::string device_name() override { return rt_->properties(0).name; }
  uint64_t memory_bytes() override { return rt_->properties(0).global_mem_bytes; }
  std::unique_ptr<Communicator> device_group(std::unique_ptr<Communicator> host) override {
    return groups_ ? groups_(std::move(host), stream_) : std::move(host);
  }

  void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& y) override;
  void linear_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx, bool accumulate) override;
  void linear_bwd_weight(const Tensor& dy, const Tensor& x, const Tensor& dw) override;
  void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) override;
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx, const Tensor& dw,
                   bool accumulate_dx) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t offset, const int32_t* positions, bool forward) override;
  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse, const int32_t* doc_start,
                     int64_t q_offset, int64_t k_offset, int64_t block_q, int64_t block_k) override;
  void attention_decode_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override;
  void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse, const Tensor& dout,
                     const Tensor& dq, const Tensor& dk, const Tensor& dv, const int32_t* doc_start, int64_t q_offset,
                     int64_t k_offset, int64_t block_q, int64_t block_k) override;
  void swiglu_fwd(const Tensor& gate_up, const Tensor& y) override;
  void swiglu_bwd(const Tensor& dy, const Tensor& gate_up, const Tensor& dgate_up) override;
  void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& y) override;
  void embedding_bwd(const Tensor& ids, const Tensor& dy, const Tensor& dtable) override;
  double cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const Tensor& dlogits, float scale,
                               int32_t ignore_index) override;
  void cross_entropy_shard_stats(const Tensor& logits, const Tensor& targets, int64_t valid, int64_t vocab_start,
                                 const Tensor& row_max, const Tensor& row_sumexp, const Tensor& target_logit,
                                 int32_t ignore_index) override;
  void cross_entropy_shard_grad(const Tensor& logits, const Tensor& targets, const Tensor& logz, const Tensor& dlogits,
                                int64_t valid, int64_t vocab_start, float scale, int32_t ignore_index) override;
  void add_inplace(const Tensor& y, const Tensor& x) override;
  void accumulate(const Tensor& dst, const Tensor& src) override;
  void attention_merge(const Tensor& acc, const Tensor& acc_lse, const Tensor& part, const Tensor& part_lse) override;
  void transpose_blocks(const Tensor& src, const Tensor& dst, int64_t a, int64_t b) override;
  void cast(const Tensor& src, const Tensor& dst) override;
  double sum_squares(const Tensor& x_f32) override;
  void adamw(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& param,
             const std::vector<int64_t>& range_end, const std::vector<float>& range_wd, const AdamWStep& s) override;

 private:
  void gemm(const cpu::GemmArgs& args);
  std::unique_ptr<rt::Runtime> rt_;
  CachingDeviceAllocator alloc_;
  std::unique_ptr<DeviceGemm> gemm_;
  // One in-order compute stream: the legacy default stream. The synchronous copies the host reads
  // (copy(), the loss and sum_squares results) run on it too, so they follow its kernels; the
  // communicators' streams are non-blocking and ordered against it by events only.
  rt::Stream stream_ = nullptr;
  bool deterministic_ = false;
  GroupFactory groups_;
  std::unique_ptr<trace::DeviceTimeline> timeline_;  // the trace's device streams (trace.h)
};

// The trace's view of a device (trace::DeviceTimeline) over a runtime's events: the first mark of
// a trace synchronises the device and records a reference event at a known host time; every mark
// is then that time plus its elapsed time from the reference.
std::unique_ptr<trace::DeviceTimeline> make_device_timeline(rt::Runtime& runtime);

// The emulated device: emulated runtime, CPU GEMM, kernels run by the emulator. Registers itself
// for Device::CUDA while it lives.
std::unique_ptr<CudaBackend> make_emulated_backend();

}  // namespace llamatron::cuda
