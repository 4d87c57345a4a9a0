#include "cuda/backend.h"

#include <vector>

#include "kernels/attention.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/optimizer.cuh"
#include "kernels/rmsnorm.cuh"
#include "llamatron/errors.h"

namespace llamatron::cuda {
namespace {

using KBf16 = kernels::bf16;

// The CUDA backend stores activations and parameters in bf16 (fp32 is the CPU's exact mode).
const KBf16* bf(const Tensor& t) {
  if (t.dtype() != DType::BF16)
    throw Error("the CUDA backend computes on bf16 tensors, got " + dtype_name(t.dtype()) + ": use train.precision=bf16");
  return static_cast<const KBf16*>(t.raw());
}
KBf16* bf_mut(const Tensor& t) { return const_cast<KBf16*>(bf(t)); }
float* f32(const Tensor& t) {
  LT_CHECK(t.dtype() == DType::F32, "expected an fp32 tensor");
  return static_cast<float*>(t.raw());
}
// q [B, T, H, D], k [B, T, KV, D]; shapes the kernels cannot take are a config error.
// q [B, T, H, D] against k [B, Tk, KV, D] at global offsets (a block of a longer sequence, or 0, 0).
kernels::AttentionDims attention_dims(const Tensor& q, const Tensor& k, int64_t q_offset = 0, int64_t k_offset = 0) {
  const kernels::AttentionDims d{static_cast<int>(q.dim(0)), static_cast<int>(q.dim(1)), static_cast<int>(q.dim(2)),
                                 static_cast<int>(k.dim(2)), static_cast<int>(q.dim(3)), static_cast<int>(k.dim(1)),
                                 static_cast<int>(q_offset), static_cast<int>(k_offset)};
  const std::string why = kernels::attention_unsupported(d);
  if (!why.empty()) throw Error(why + ": change the model config or train on the CPU backend (train.device=cpu)");
  return d;
}

int rows_of(const Tensor& t) { return static_cast<int>(t.numel() / t.dim(-1)); }
cudaStream_t cs(rt::Stream s) { return static_cast<cudaStream_t>(s); }

rt::Copy copy_kind(Device dst, Device src) {
  if (dst == Device::CPU) return src == Device::CPU ? rt::Copy::HostToHost : rt::Copy::DeviceToHost;
  return src == Device::CPU ? rt::Copy::HostToDevice : rt::Copy::DeviceToDevice;
}

}  // namespace

namespace {

class RuntimeTimeline final : public trace::DeviceTimeline {
 public:
  explicit RuntimeTimeline(rt::Runtime& rt) : rt_(rt) {}
  ~RuntimeTimeline() override { forget(); }
  int mark(void* stream) override {
    if (!reference_) {
      rt_.device_synchronize();  // idle: the reference event passes as it is recorded
      reference_ = rt_.event_create();
      rt_.event_record(reference_, nullptr);
      reference_us_ = trace::now_us();
    }
    marks_.push_back(rt_.event_create());
    rt_.event_record(marks_.back(), stream);
    return static_cast<int>(marks_.size()) - 1;
  }
  std::vector<double> resolve() override {
    std::vector<double> at;
    for (rt::Event e : marks_) {
      rt_.event_synchronize(e);
      at.push_back(reference_us_ + 1e3 * static_cast<double>(rt_.event_elapsed_ms(reference_, e)));
    }
    forget();
    return at;
  }

 private:
  void forget() {
    for (rt::Event e : marks_) rt_.event_destroy(e);
    marks_.clear();
    if (reference_) rt_.event_destroy(reference_);
    reference_ = nullptr;
  }
  rt::Runtime& rt_;
  rt::Event reference_ = nullptr;
  double reference_us_ = 0;
  std::vector<rt::Event> marks_;
};

}  // namespace

std::unique_ptr<trace::DeviceTimeline> make_device_timeline(rt::Runtime& runtime) { return std::make_unique<RuntimeTimeline>(runtime); }

CudaBackend::CudaBackend(std::unique_ptr<rt::Runtime> runtime, std::unique_ptr<DeviceGemm> gemm, GroupFactory groups)
    : rt_(std::move(runtime)), alloc_(*rt_), gemm_(std::move(gemm)), groups_(std::move(groups)), timeline_(make_device_timeline(*rt_)) {
  register_backend(Device::CUDA, this);
  trace::set_device_timeline(timeline_.get());
}

CudaBackend::~CudaBackend() {
  trace::set_device_timeline(nullptr);
  register_backend(Device::CUDA, nullptr);
}

void CudaBackend::copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  rt_->memcpy(dst, src, bytes, copy_kind(dst_device, src_device));
}

void CudaBackend::zero(void* ptr, size_t bytes) { rt_->memset_async(ptr, 0, bytes, stream_); }

void CudaBackend::gemm(const cpu::GemmArgs& args) { gemm_->run(args, stream_); }

// Linear layers: the same row-major GEMMs as the CPU backend (csrc/ops/ops.cpp).
void CudaBackend::linear_fwd(const Tensor& x, const Tensor& w, const Tensor& y) {
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  gemm({DType::BF16, y.dtype(), false, true, m, n, k, bf(x), k, bf(w), k, y.raw(), n});
}
void CudaBackend::linear_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx, bool accumulate) {
  const int64_t n = w.dim(0), k = w.dim(1), m = dy.numel() / n;
  gemm({DType::BF16, dx.dtype(), false, false, m, k, n, bf(dy), n, bf(w), k, dx.raw(), k, 1.0f, accumulate});
}
void CudaBackend::linear_bwd_weight(const Tensor& dy, const Tensor& x, const Tensor& dw) {
  const int64_t n = dw.dim(0), k = dw.dim(1), m = dy.numel() / n;
  gemm({DType::BF16, DType::F32, true, false, n, k, m, bf(dy), n, bf(x), k, f32(dw), k, 1.0f, true});
}

void CudaBackend::rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  kernels::rmsnorm_forward(bf(x), bf(w), bf_mut(y), f32(rstd), rows_of(x), static_cast<int>(x.dim(-1)), eps, cs(stream_));
}
void CudaBackend::rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                              const Tensor& dw, bool accumulate_dx) {
  const int rows = rows_of(x), c = static_cast<int>(x.dim(-1));
  Tensor partial = Tensor::empty({kernels::rmsnorm_dweight_slices(rows), c}, DType::F32, Device::CUDA);
  kernels::rmsnorm_backward(bf(dy), bf(x), bf(w), f32(rstd), bf_mut(dx), f32(dw), f32(partial), rows, c, accumulate_dx,
                            cs(stream_));
}

void CudaBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t offset, const int32_t* positions,
                       bool forward) {
  const auto f = forward ? kernels::rope_forward : kernels::rope_backward;
  f(bf_mut(x), f32(cos), f32(sin), static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)), static_cast<int>(x.dim(2)),
    static_cast<int>(x.dim(3)), static_cast<int>(offset), cs(stream_), positions);
}

// Tensor-core flash attention (kernels/attention.cu); its tiles are its own, so the CPU's
// block_q / block_k do not apply.
void CudaBackend::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                                const int32_t* doc_start, int64_t q_offset, int64_t k_offset, int64_t, int64_t) {
  const kernels::AttentionDims d = attention_dims(q, k, q_offset, k_offset);
  kernels::attention_forward(bf(q), bf(k), bf(v), bf_mut(o), f32(lse), d, cs(stream_), kernels::ForwardTiles::k32RowsPerWarp,
                             doc_start);
}
void CudaBackend::attention_decode_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
  const kernels::AttentionDims d{static_cast<int>(q.dim(0)), static_cast<int>(k.dim(1)), static_cast<int>(q.dim(2)),
                                 static_cast<int>(k.dim(2)), static_cast<int>(q.dim(3))};
  if (const std::string why = kernels::attention_unsupported(d); !why.empty())
    throw Error(why + ": generate on the CPU backend (train.device=cpu)");
  kernels::attention_decode(bf(q), bf(k), bf(v), bf_mut(o), d.b, d.t, d.h, d.kv, d.d, cs(stream_));
}
void CudaBackend::attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                                const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv, const int32_t* doc_start,
                                int64_t q_offset, int64_t k_offset, int64_t, int64_t) {
  const kernels::AttentionDims d = attention_dims(q, k, q_offset, k_offset);
  const auto bytes = static_cast<int64_t>(kernels::attention_backward_workspace_bytes(d, deterministic_));
  Tensor workspace = Tensor::empty({(bytes + 3) / 4}, DType::F32, Device::CUDA);
  kernels::attention_backward(bf(q), bf(k), bf(v), bf(o), f32(lse), bf(dout), bf_mut(dq), bf_mut(dk), bf_mut(dv),
                              workspace.raw(), d, deterministic_, cs(stream_), doc_start);
}

void CudaBackend::swiglu_fwd(const Tensor& gate_up, const Tensor& y) {
  kernels::swiglu_forward(bf(gate_up), bf_mut(y), rows_of(y), static_cast<int>(y.dim(-1)), cs(stream_));
}
void CudaBackend::swiglu_bwd(const Tensor& dy, const Tensor& gate_up, const Tensor& dgate_up) {
  kernels::swiglu_backward(bf(dy), bf(gate_up), bf_mut(dgate_up), rows_of(dy), static_cast<int>(dy.dim(-1)), cs(stream_));
}

void CudaBackend::embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& y) {
  kernels::embedding_forward(ids.data<int32_t>(), bf(table), bf_mut(y), ids.numel(), static_cast<int>(table.dim(1)), cs(stream_));
}
void CudaBackend::embedding_bwd(const Tensor& ids, const Tensor& dy, const Tensor& dtable) {
  kernels::embedding_backward(ids.data<int32_t>(), bf(dy), f32(dtable), ids.numel(), static_cast<int>(dtable.dim(1)), cs(stream_));
}

double CudaBackend::cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const Tensor& dlogits, float scale,
                                          int32_t ignore_index) {
  const int rows = rows_of(logits);
  Tensor losses = Tensor::empty({rows}, DType::F32, Device::CUDA);
  kernels::cross_entropy_forward_backward(bf(logits), targets.data<int32_t>(), bf_mut(dlogits), f32(losses), rows,
                                          static_cast<int>(logits.dim(-1)), scale, ignore_index, cs(stream_));
  std::vector<float> host(rows);
  rt_->memcpy(host.data(), losses.raw(), rows * sizeof(float), rt::Copy::DeviceToHost);
  double total = 0;  // in row order, in double: the same sum on every run
  for (float l : host) total += l;
  return total;
}

void CudaBackend::cross_entropy_shard_stats(const Tensor& logits, const Tensor& targets, int64_t valid, int64_t vocab_start,
                                            const Tensor& row_max, const Tensor& row_sumexp, const Tensor& target_logit,
                                            int32_t ignore_index) {
  kernels::cross_entropy_shard_stats(bf(logits), targets.data<int32_t>(), rows_of(logits), static_cast<int>(logits.dim(-1)),
                                     static_cast<int>(valid), static_cast<int>(vocab_start), ignore_index, f32(row_max),
                                     f32(row_sumexp), f32(target_logit), cs(stream_));
}
void CudaBackend::cross_entropy_shard_grad(const Tensor& logits, const Tensor& targets, const Tensor& logz, const Tensor& dlogits,
                                           int64_t valid, int64_t vocab_start, float scale, int32_t ignore_index) {
  kernels::cross_entropy_shard_grad(bf(logits), targets.data<int32_t>(), f32(logz), bf_mut(dlogits), rows_of(logits),
                                    static_cast<int>(logits.dim(-1)), static_cast<int>(valid), static_cast<int>(vocab_start), scale,
                                    ignore_index, cs(stream_));
}

void CudaBackend::add_inplace(const Tensor& y, const Tensor& x) { kernels::add_inplace(bf_mut(y), bf(x), y.numel(), cs(stream_)); }
void CudaBackend::accumulate(const Tensor& dst, const Tensor& src) {
  if (src.dtype() == DType::F32) kernels::accumulate(f32(dst), f32(src), dst.numel(), cs(stream_));
  else kernels::accumulate(f32(dst), bf(src), dst.numel(), cs(stream_));
}
void CudaBackend::attention_merge(const Tensor& acc, const Tensor& acc_lse, const Tensor& part, const Tensor& part_lse) {
  const int h = static_cast<int>(part.dim(-2)), d = static_cast<int>(part.dim(-1));
  kernels::attention_merge(f32(acc), f32(acc_lse), bf(part), f32(part_lse), part.numel() / (int64_t(h) * d), h, d, cs(stream_));
}
void CudaBackend::transpose_blocks(const Tensor& src, const Tensor& dst, int64_t a, int64_t b) {
  kernels::transpose_blocks(bf(src), bf_mut(dst), a, b, src.numel() / (a * b), cs(stream_));
}

void CudaBackend::cast(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == DType::F32) return kernels::cast_to_bf16(f32(src), bf_mut(dst), src.numel(), cs(stream_));
  kernels::cast_to_f32(bf(src), f32(dst), src.numel(), cs(stream_));
}

double CudaBackend::sum_squares(const Tensor& x_f32) {
  Tensor scratch = Tensor::empty({kernels::sum_squares_scratch_floats()}, DType::F32, Device::CUDA);
  kernels::sum_squares<float>(f32(x_f32), x_f32.numel(), f32(scratch), f32(scratch) + kernels::sum_squares_scratch_floats() - 1,
                              cs(stream_));
  float total = 0;
  rt_->memcpy(&total, f32(scratch) + kernels::sum_squares_scratch_floats() - 1, sizeof(float), rt::Copy::DeviceToHost);
  return total;
}

void CudaBackend::adamw(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& param,
                        const std::vector<int64_t>& range_end, const std::vector<float>& range_wd, const AdamWStep& s) {
  const int ranges = static_cast<int>(range_end.size());
  Tensor table = Tensor::empty({3 * ranges}, DType::F32, Device::CUDA);  // int64 ends, then fp32 decays
  auto* ends = static_cast<int64_t*>(table.raw());
  auto* wds = reinterpret_cast<float*>(ends + ranges);
  rt_->memcpy(ends, range_end.data(), ranges * sizeof(int64_t), rt::Copy::HostToDevice);
  rt_->memcpy(wds, range_wd.data(), ranges * sizeof(float), rt::Copy::HostToDevice);
  kernels::adamw_step<float>(f32(master), f32(grad), f32(m), f32(v), bf_mut(param), master.numel(), ends, wds, ranges,
                             kernels::make_adamw_args(s.lr, s.beta1, s.beta2, s.eps, s.step, s.grad_scale), cs(stream_));
}

}  // namespace llamatron::cuda
