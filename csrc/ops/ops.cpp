#include "llamatron/ops.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "llamatron/backend.h"
#include "llamatron/errors.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/gemm.h"

namespace llamatron::ops {
namespace {

void same_shape(const Tensor& a, const Tensor& b, const char* what) {
  LT_CHECK(a.shape() == b.shape(), std::string(what) + ": " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
}
void same_dtype(const Tensor& a, const Tensor& b, const char* what) {
  LT_CHECK(a.dtype() == b.dtype(), std::string(what) + ": " + dtype_name(a.dtype()) + " vs " + dtype_name(b.dtype()));
}
// All tensors of an op live on one device; its backend, or nullptr for the CPU (the code below).
DeviceBackend* backend_of(std::initializer_list<const Tensor*> ts) {
  const Device d = (*ts.begin())->device();
  for (const Tensor* t : ts)
    LT_CHECK(t->device() == d, "an op's tensors must be on one device: " + device_name(d) + " and " + device_name(t->device()));
  return d == Device::CPU ? nullptr : &backend_for(d);
}

// Calls f(T{}) with T the storage type (float or bf16) of t.
template <typename F>
void dispatch_float(const Tensor& t, F&& f) {
  switch (t.dtype()) {
    case DType::F32: f(float{}); break;
    case DType::BF16: f(bf16{}); break;
    default: LT_CHECK(false, "expected a floating tensor, got " + dtype_name(t.dtype()));
  }
}

int64_t rows_of(const Tensor& t) { return t.numel() / t.dim(-1); }

// LLAMATRON_PROFILE=1: wall time per op, printed at exit (where a step's time goes).
class OpProfile {
 public:
  static OpProfile& get() {
    static OpProfile p;
    return p;
  }
  bool on = std::getenv("LLAMATRON_PROFILE") != nullptr;
  void add(const char* op, double ms) { totals_[op] += ms; }
  ~OpProfile() {
    for (const auto& [op, ms] : totals_) std::fprintf(stderr, "[profile] %-24s %10.1f ms\n", op.c_str(), ms);
  }

 private:
  std::map<std::string, double> totals_;
};

struct OpTimer {
  const char* op;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  explicit OpTimer(const char* name) : op(name) {}
  ~OpTimer() {
    if (OpProfile::get().on)
      OpProfile::get().add(op, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
};

}  // namespace

void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& y) {
  OpTimer timer_("linear_fwd");
  DeviceBackend* be = backend_of({&x, &w, &y});
  same_dtype(x, w, "linear_fwd x/w");
  const int64_t k = w.dim(1), n = w.dim(0), m = x.numel() / k;
  LT_CHECK(x.numel() == m * k && y.numel() == m * n, "linear_fwd shapes");
  if (be) return be->linear_fwd(x, w, y);
  cpu::gemm({x.dtype(), y.dtype(), false, true, m, n, k, x.raw(), k, w.raw(), k, y.raw(), n});
}

void linear_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx, bool accumulate) {
  OpTimer timer_("linear_bwd_data");
  DeviceBackend* be = backend_of({&dy, &w, &dx});
  same_dtype(dy, w, "linear_bwd_data dy/w");
  const int64_t n = w.dim(0), k = w.dim(1), m = dy.numel() / n;
  LT_CHECK(dy.numel() == m * n && dx.numel() == m * k, "linear_bwd_data shapes");
  if (be) return be->linear_bwd_data(dy, w, dx, accumulate);
  cpu::gemm({dy.dtype(), dx.dtype(), false, false, m, k, n, dy.raw(), n, w.raw(), k, dx.raw(), k, 1.0f, accumulate});
}

void linear_bwd_weight(const Tensor& dy, const Tensor& x, const Tensor& dw) {
  OpTimer timer_("linear_bwd_weight");
  DeviceBackend* be = backend_of({&dy, &x, &dw});
  same_dtype(dy, x, "linear_bwd_weight dy/x");
  LT_CHECK(dw.dtype() == DType::F32, "weight gradients are fp32");
  const int64_t n = dw.dim(0), k = dw.dim(1), m = dy.numel() / n;
  LT_CHECK(dy.numel() == m * n && x.numel() == m * k, "linear_bwd_weight shapes");
  if (be) return be->linear_bwd_weight(dy, x, dw);
  cpu::gemm({dy.dtype(), DType::F32, true, false, n, k, m, dy.raw(), n, x.raw(), k, dw.raw(), k, 1.0f, true});
}

void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  OpTimer timer_("rmsnorm_fwd");
  DeviceBackend* be = backend_of({&x, &w, &y, &rstd});
  same_shape(x, y, "rmsnorm_fwd x/y");
  LT_CHECK(w.numel() == x.dim(-1) && rstd.numel() == rows_of(x), "rmsnorm_fwd shapes");
  if (be) return be->rmsnorm_fwd(x, w, eps, y, rstd);
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    cpu::rmsnorm_fwd<T>(x.data<T>(), w.data<T>(), y.data<T>(), rstd.data<float>(), rows_of(x), x.dim(-1), eps);
  });
}

void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx, const Tensor& dw,
                 bool accumulate_dx) {
  OpTimer timer_("rmsnorm_bwd");
  DeviceBackend* be = backend_of({&dy, &x, &w, &rstd, &dx, &dw});
  same_shape(dy, x, "rmsnorm_bwd dy/x");
  same_shape(dx, x, "rmsnorm_bwd dx/x");
  if (be) return be->rmsnorm_bwd(dy, x, w, rstd, dx, dw, accumulate_dx);
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    cpu::rmsnorm_bwd<T>(dy.data<T>(), x.data<T>(), w.data<T>(), rstd.data<float>(), dx.data<T>(), dw.data<float>(),
                        rows_of(x), x.dim(-1), accumulate_dx);
  });
}

namespace {
// An optional int32 [B, T] tensor of per-position values (RoPE positions, document starts), on the
// device of `like`; returns its data or null.
const int32_t* per_position(const Tensor& x, const Tensor& like, const char* what) {
  if (!x.defined()) return nullptr;
  LT_CHECK(x.dtype() == DType::I32 && x.numel() == like.dim(0) * like.dim(1) && x.device() == like.device(),
           std::string(what) + " must be int32 [B, T] on the tensors' device");
  return x.data<int32_t>();
}

void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t offset, const Tensor& positions, bool forward) {
  OpTimer timer_(forward ? "rope_fwd" : "rope_bwd");
  DeviceBackend* be = backend_of({&x, &cos, &sin});
  LT_CHECK(x.ndim() == 4 && x.dim(3) % 2 == 0, "rope expects [B,T,H,D] with even D");
  // With position ids the caller keeps them below the table's rows (the model's are < T <= max_seq_len).
  LT_CHECK(cos.dim(1) == x.dim(3) / 2 && cos.dim(0) >= offset + x.dim(1), "rope table too small");
  const int32_t* pos = per_position(positions, x, "rope positions");
  if (be) return be->rope(x, cos, sin, offset, pos, forward);
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    auto f = forward ? cpu::rope_fwd<T> : cpu::rope_bwd<T>;
    f(x.data<T>(), cos.data<float>(), sin.data<float>(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), offset, pos);
  });
}
}  // namespace

void rope_fwd(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t offset, const Tensor& positions) {
  rope(x, cos, sin, offset, positions, true);
}
void rope_bwd(const Tensor& dx, const Tensor& cos, const Tensor& sin, int64_t offset, const Tensor& positions) {
  rope(dx, cos, sin, offset, positions, false);
}

namespace {
// The CPU shape of an attention call (q against keys at their global offsets).
cpu::AttentionShape attention_shape(const Tensor& q, const Tensor& k, const AttentionMask& mask, int64_t block_q, int64_t block_k) {
  LT_CHECK(q.ndim() == 4 && k.ndim() == 4, "attention expects [B,T,heads,D]");
  LT_CHECK(k.dim(0) == q.dim(0) && k.dim(3) == q.dim(3), "attention q/k shapes");
  LT_CHECK(q.dim(2) % k.dim(2) == 0, "n_heads must be a multiple of n_kv_heads");
  cpu::AttentionShape s{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3), block_q, block_k};
  s.tk = k.dim(1), s.q_offset = mask.q_offset, s.k_offset = mask.k_offset;
  return s;
}
}  // namespace

void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                   const AttentionMask& mask, int64_t block_q, int64_t block_k) {
  OpTimer timer_("attention_fwd");
  DeviceBackend* be = backend_of({&q, &k, &v, &o, &lse});
  auto s = attention_shape(q, k, mask, block_q, block_k);
  s.doc_start = per_position(mask.doc_start, q, "attention doc_start");
  same_shape(k, v, "attention k/v");
  same_shape(q, o, "attention q/o");
  LT_CHECK(lse.numel() == s.b * s.h * s.t && lse.dtype() == DType::F32, "attention lse");
  if (be) return be->attention_fwd(q, k, v, o, lse, s.doc_start, mask.q_offset, mask.k_offset, block_q, block_k);
  dispatch_float(q, [&](auto t) {
    using T = decltype(t);
    cpu::attention_fwd<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<float>(), s);
  });
}

void attention_decode_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) {
  OpTimer timer_("attention_decode_fwd");
  DeviceBackend* be = backend_of({&q, &k, &v, &o});
  LT_CHECK(q.ndim() == 4 && k.ndim() == 4 && q.dim(1) == 1, "attention_decode expects q [B,1,H,D] and k [B,tk,KV,D]");
  LT_CHECK(k.dim(0) == q.dim(0) && k.dim(3) == q.dim(3) && k.dim(1) >= 1 && q.dim(2) % k.dim(2) == 0, "attention_decode q/k shapes");
  same_shape(k, v, "attention_decode k/v");
  same_shape(q, o, "attention_decode q/o");
  if (be) return be->attention_decode_fwd(q, k, v, o);
  dispatch_float(q, [&](auto t) {
    using T = decltype(t);
    cpu::attention_decode_fwd<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), q.dim(0), k.dim(1), q.dim(2), k.dim(2), q.dim(3));
  });
}

void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                   const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv, const AttentionMask& mask,
                   int64_t block_q, int64_t block_k) {
  OpTimer timer_("attention_bwd");
  DeviceBackend* be = backend_of({&q, &k, &v, &o, &lse, &dout, &dq, &dk, &dv});
  auto s = attention_shape(q, k, mask, block_q, block_k);
  s.doc_start = per_position(mask.doc_start, q, "attention doc_start");
  same_shape(q, dq, "attention q/dq");
  same_shape(q, dout, "attention q/dout");
  same_shape(k, dk, "attention k/dk");
  same_shape(v, dv, "attention v/dv");
  if (be) return be->attention_bwd(q, k, v, o, lse, dout, dq, dk, dv, s.doc_start, mask.q_offset, mask.k_offset, block_q, block_k);
  dispatch_float(q, [&](auto t) {
    using T = decltype(t);
    cpu::attention_bwd<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<float>(), dout.data<T>(),
                          dq.data<T>(), dk.data<T>(), dv.data<T>(), s);
  });
}

void swiglu_fwd(const Tensor& gate_up, const Tensor& y) {
  OpTimer timer_("swiglu_fwd");
  DeviceBackend* be = backend_of({&gate_up, &y});
  const int64_t f = y.dim(-1), rows = rows_of(y);
  LT_CHECK(gate_up.dim(-1) == 2 * f && rows_of(gate_up) == rows, "swiglu_fwd: gate_up must be [rows, 2F] for y [rows, F]");
  same_dtype(gate_up, y, "swiglu gate_up/y");
  if (be) return be->swiglu_fwd(gate_up, y);
  dispatch_float(y, [&](auto t) {
    using T = decltype(t);
    cpu::swiglu_fwd<T>(gate_up.data<T>(), y.data<T>(), rows, f);
  });
}

void swiglu_bwd(const Tensor& dy, const Tensor& gate_up, const Tensor& dgate_up) {
  OpTimer timer_("swiglu_bwd");
  DeviceBackend* be = backend_of({&dy, &gate_up, &dgate_up});
  const int64_t f = dy.dim(-1), rows = rows_of(dy);
  LT_CHECK(gate_up.dim(-1) == 2 * f && rows_of(gate_up) == rows, "swiglu_bwd: gate_up must be [rows, 2F] for dy [rows, F]");
  same_shape(gate_up, dgate_up, "swiglu gate_up/dgate_up");
  if (be) return be->swiglu_bwd(dy, gate_up, dgate_up);
  dispatch_float(dy, [&](auto t) {
    using T = decltype(t);
    cpu::swiglu_bwd<T>(dy.data<T>(), gate_up.data<T>(), dgate_up.data<T>(), rows, f);
  });
}

void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& y) {
  OpTimer timer_("embedding_fwd");
  DeviceBackend* be = backend_of({&ids, &table, &y});
  LT_CHECK(ids.dtype() == DType::I32 && y.numel() == ids.numel() * table.dim(1), "embedding_fwd shapes");
  if (be) return be->embedding_fwd(ids, table, y);
  dispatch_float(table, [&](auto t) {
    using T = decltype(t);
    cpu::embedding_fwd<T>(ids.data<int32_t>(), table.data<T>(), y.data<T>(), ids.numel(), table.dim(1));
  });
}

void embedding_bwd(const Tensor& ids, const Tensor& dy, const Tensor& dtable) {
  OpTimer timer_("embedding_bwd");
  DeviceBackend* be = backend_of({&ids, &dy, &dtable});
  LT_CHECK(dtable.dtype() == DType::F32 && dy.numel() == ids.numel() * dtable.dim(1), "embedding_bwd shapes");
  if (be) return be->embedding_bwd(ids, dy, dtable);
  dispatch_float(dy, [&](auto t) {
    using T = decltype(t);
    cpu::embedding_bwd<T>(ids.data<int32_t>(), dy.data<T>(), dtable.data<float>(), ids.numel(), dtable.dim(1));
  });
}

double cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const Tensor& dlogits, float scale,
                             int32_t ignore_index) {
  OpTimer timer_("cross_entropy_fwd_bwd");
  DeviceBackend* be = backend_of({&logits, &targets, &dlogits});
  same_shape(logits, dlogits, "cross_entropy logits/dlogits");
  LT_CHECK(targets.dtype() == DType::I32 && targets.numel() == rows_of(logits), "cross_entropy targets");
  if (be) return be->cross_entropy_fwd_bwd(logits, targets, dlogits, scale, ignore_index);
  double loss = 0;
  dispatch_float(logits, [&](auto t) {
    using T = decltype(t);
    loss = cpu::cross_entropy_fwd_bwd<T>(logits.data<T>(), targets.data<int32_t>(), dlogits.data<T>(),
                                         rows_of(logits), logits.dim(-1), ignore_index, scale);
  });
  return loss;
}

void cross_entropy_shard_stats(const Tensor& logits, const Tensor& targets, int64_t valid, int64_t vocab_start,
                               const Tensor& row_max, const Tensor& row_sumexp, const Tensor& target_logit,
                               int32_t ignore_index) {
  OpTimer timer_("cross_entropy_shard_stats");
  DeviceBackend* be = backend_of({&logits, &targets, &row_max, &row_sumexp, &target_logit});
  const int64_t n = rows_of(logits);
  LT_CHECK(targets.numel() == n && row_max.numel() == n && row_sumexp.numel() == n && target_logit.numel() == n &&
               valid >= 0 && valid <= logits.dim(-1),
           "cross_entropy_shard_stats shapes");
  if (be) return be->cross_entropy_shard_stats(logits, targets, valid, vocab_start, row_max, row_sumexp, target_logit, ignore_index);
  dispatch_float(logits, [&](auto t) {
    using T = decltype(t);
    cpu::cross_entropy_shard_stats<T>(logits.data<T>(), targets.data<int32_t>(), n, logits.dim(-1), valid, vocab_start,
                                      ignore_index, row_max.data<float>(), row_sumexp.data<float>(), target_logit.data<float>());
  });
}

void cross_entropy_shard_grad(const Tensor& logits, const Tensor& targets, const Tensor& logz, const Tensor& dlogits,
                              int64_t valid, int64_t vocab_start, float scale, int32_t ignore_index) {
  OpTimer timer_("cross_entropy_shard_grad");
  DeviceBackend* be = backend_of({&logits, &targets, &logz, &dlogits});
  same_shape(logits, dlogits, "cross_entropy_shard_grad logits/dlogits");
  const int64_t n = rows_of(logits);
  LT_CHECK(targets.numel() == n && logz.numel() == n && valid >= 0 && valid <= logits.dim(-1), "cross_entropy_shard_grad shapes");
  if (be) return be->cross_entropy_shard_grad(logits, targets, logz, dlogits, valid, vocab_start, scale, ignore_index);
  dispatch_float(logits, [&](auto t) {
    using T = decltype(t);
    cpu::cross_entropy_shard_grad<T>(logits.data<T>(), targets.data<int32_t>(), logz.data<float>(), dlogits.data<T>(), n,
                                     logits.dim(-1), valid, vocab_start, ignore_index, scale);
  });
}

void add_inplace(const Tensor& y, const Tensor& x) {
  OpTimer timer_("add_inplace");
  DeviceBackend* be = backend_of({&y, &x});
  same_shape(y, x, "add y/x");
  if (be) return be->add_inplace(y, x);
  dispatch_float(y, [&](auto t) {
    using T = decltype(t);
    cpu::add_inplace<T>(y.data<T>(), x.data<T>(), y.numel());
  });
}

void accumulate(const Tensor& dst, const Tensor& src) {
  OpTimer timer_("accumulate");
  DeviceBackend* be = backend_of({&dst, &src});
  LT_CHECK(dst.dtype() == DType::F32 && dst.numel() == src.numel(), "accumulate: an fp32 dst of src's size");
  if (be) return be->accumulate(dst, src);
  dispatch_float(src, [&](auto t) {
    using T = decltype(t);
    cpu::accumulate<T>(dst.data<float>(), src.data<T>(), dst.numel());
  });
}

void attention_merge(const Tensor& acc, const Tensor& acc_lse, const Tensor& part, const Tensor& part_lse) {
  OpTimer timer_("attention_merge");
  DeviceBackend* be = backend_of({&acc, &acc_lse, &part, &part_lse});
  LT_CHECK(acc.dtype() == DType::F32 && acc_lse.dtype() == DType::F32 && part_lse.dtype() == DType::F32 && acc.numel() == part.numel() &&
               acc_lse.numel() == part_lse.numel() && part.ndim() >= 3,
           "attention_merge: fp32 acc [N, H, D] and LSEs [H, N], part of acc's size");
  const int64_t d = part.dim(-1), h = part.dim(-2), n = part.numel() / (h * d);
  LT_CHECK(acc_lse.numel() == h * n, "attention_merge: LSE [H, N]");
  if (be) return be->attention_merge(acc, acc_lse, part, part_lse);
  dispatch_float(part, [&](auto t) {
    using T = decltype(t);
    cpu::attention_merge<T>(acc.data<float>(), acc_lse.data<float>(), part.data<T>(), part_lse.data<float>(), n, h, d);
  });
}

void transpose_blocks(const Tensor& src, const Tensor& dst, int64_t a, int64_t b) {
  OpTimer timer_("transpose_blocks");
  DeviceBackend* be = backend_of({&src, &dst});
  same_dtype(src, dst, "transpose_blocks src/dst");
  LT_CHECK(src.numel() == dst.numel() && a > 0 && b > 0 && src.numel() % (a * b) == 0, "transpose_blocks shapes");
  if (be) return be->transpose_blocks(src, dst, a, b);
  cpu::transpose_blocks(src.raw(), dst.raw(), a, b, src.numel() / (a * b) * static_cast<int64_t>(dtype_size(src.dtype())));
}

}  // namespace llamatron::ops
