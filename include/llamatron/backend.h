// A device backend: the memory and the op implementations for tensors on one device. The CPU's
// are built into csrc/ops (they are the reference); the CUDA backend (csrc/cuda/backend.cpp,
// on the real runtime with nvcc-built kernels, or on the emulated runtime with the same kernels
// run by the emulator) registers itself, and ops:: hands it every op whose tensors live there.
// The signatures are those of llamatron/ops.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llamatron/comm.h"
#include "llamatron/tensor.h"

namespace llamatron {

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual Allocator& allocator() = 0;
  // Copies between this device and the host, or within the device; waits for the copy.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  virtual void zero(void* ptr, size_t bytes) = 0;
  // Same inputs, same bits, at some cost in speed where the fast path sums in a racy order
  // (attention's dQ atomics on CUDA). Off by default, as in FlashAttention and Megatron.
  virtual void set_deterministic(bool on) = 0;
  // The communicator for tensors on this device over the ranks of `host` (an MPI group): NCCL on
  // GPUs; the host group itself where device memory is host memory (the emulated device).
  virtual std::unique_ptr<Communicator> device_group(std::unique_ptr<Communicator> host) { return host; }
  virtual std::string device_name() { return ""; }  // the GPU's name (its peak: hardware.h)
  virtual uint64_t memory_bytes() { return 0; }     // the device's memory (0: it is host memory, or unknown)

  virtual void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& y) = 0;
  virtual void linear_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx, bool accumulate) = 0;
  virtual void linear_bwd_weight(const Tensor& dy, const Tensor& x, const Tensor& dw) = 0;
  virtual void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) = 0;
  virtual void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                           const Tensor& dw, bool accumulate_dx) = 0;
  // positions / doc_start: int32 [B, T] on the device, or null; q_offset / k_offset: a block of a
  // longer sequence (ops.h, AttentionMask).
  virtual void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t offset, const int32_t* positions,
                    bool forward) = 0;
  virtual void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                             const int32_t* doc_start, int64_t q_offset, int64_t k_offset, int64_t block_q, int64_t block_k) = 0;
  virtual void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                             const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv, const int32_t* doc_start,
                             int64_t q_offset, int64_t k_offset, int64_t block_q, int64_t block_k) = 0;
  virtual void attention_decode_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) = 0;
  virtual void swiglu_fwd(const Tensor& gate_up, const Tensor& y) = 0;
  virtual void swiglu_bwd(const Tensor& dy, const Tensor& gate_up, const Tensor& dgate_up) = 0;
  virtual void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& y) = 0;
  virtual void embedding_bwd(const Tensor& ids, const Tensor& dy, const Tensor& dtable) = 0;
  virtual double cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const Tensor& dlogits, float scale,
                                       int32_t ignore_index) = 0;
  virtual void cross_entropy_shard_stats(const Tensor& logits, const Tensor& targets, int64_t valid, int64_t vocab_start,
                                         const Tensor& row_max, const Tensor& row_sumexp, const Tensor& target_logit,
                                         int32_t ignore_index) = 0;
  virtual void cross_entropy_shard_grad(const Tensor& logits, const Tensor& targets, const Tensor& logz, const Tensor& dlogits,
                                        int64_t valid, int64_t vocab_start, float scale, int32_t ignore_index) = 0;
  virtual void add_inplace(const Tensor& y, const Tensor& x) = 0;
  virtual void accumulate(const Tensor& dst, const Tensor& src) = 0;
  virtual void attention_merge(const Tensor& acc, const Tensor& acc_lse, const Tensor& part, const Tensor& part_lse) = 0;
  virtual void transpose_blocks(const Tensor& src, const Tensor& dst, int64_t a, int64_t b) = 0;

  // The optimizer's pieces on flat buffers (csrc/train/optim.cpp): fp32 -> bf16 rounding, the
  // sum of squares of the gradients, and AdamW where element i decays with range_wd[r] for the
  // first r with i < range_end[r] (host vectors).
  virtual void cast(const Tensor& src, const Tensor& dst) = 0;  // fp32 -> bf16 (rounding) or bf16 -> fp32
  virtual double sum_squares(const Tensor& x_f32) = 0;
  struct AdamWStep {
    float lr, beta1, beta2, eps, grad_scale;
    int64_t step;
  };
  virtual void adamw(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& param,
                     const std::vector<int64_t>& range_end, const std::vector<float>& range_wd, const AdamWStep& s) = 0;
};

// The CUDA backend this binary was linked with (the GPU one, or the emulated one in llamatron-emu),
// registered while it lives; nullptr with `why` set when there is none or no usable device.
std::unique_ptr<DeviceBackend> make_linked_cuda_backend(std::string* why);

// Registers (or, with nullptr, removes) the backend of a non-CPU device. Not owned.
void register_backend(Device device, DeviceBackend* backend);
// The backend of a non-CPU device; an Error if none is registered.
DeviceBackend& backend_for(Device device);

}  // namespace llamatron
