// Context parallelism's ring attention (include/llamatron/context_parallel.h). Per step, the K/V
// block of CP rank `src` is here: each of this rank's two query chunks attends to each of the
// block's two key chunks at their global offsets (ops::attention_fwd / _bwd on [1, T/2c] views,
// one sequence at a time), while the block travels on to the next rank. Forward partials are
// merged by log-sum-exp in fp32; backward dQ is summed here, dK/dV travel with their block.
#include "llamatron/context_parallel.h"

#include <algorithm>
#include <limits>

#include "llamatron/errors.h"
#include "llamatron/memory.h"

namespace llamatron {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

using Transfer = Communicator::Transfer;

// The K/V (or dK/dV) block in flight: [2, B, T/c, KV, D], keys then values.
struct KvBlock {
  Tensor both;
  int64_t half = 0;  // elements of each
  Tensor k(const Shape& s) const { return both.view(0, s); }
  Tensor v(const Shape& s) const { return both.view(half, s); }
};

KvBlock kv_block(const Tensor& k, DType dtype) { return KvBlock{Tensor::empty({2 * k.numel()}, dtype, k.device()), k.numel()}; }

// Sends `from` to the next rank of the ring while `to` receives from the previous one.
Handle pass_on(Communicator& cp, const KvBlock& from, const KvBlock& to) {
  const int next = (cp.rank() + 1) % cp.size(), prev = (cp.rank() + cp.size() - 1) % cp.size();
  return cp.send_recv_async({Transfer{Transfer::Send, next, from.both.raw(), from.both.numel(), from.both.dtype()},
                             Transfer{Transfer::Recv, prev, to.both.raw(), to.both.numel(), to.both.dtype()}});
}

struct Dims {
  int64_t B, Tl, Tc, H, KV, D;
  Dims(const ContextSplit& s, const Tensor& q, const Tensor& k)
      : B(q.dim(0)), Tl(s.local()), Tc(s.chunk()), H(q.dim(2)), KV(k.dim(2)), D(q.dim(3)) {}
  // Views of sequence b's local chunk i: [1, T/2c, heads, D] of a [B, T/c, heads, D] tensor.
  Tensor chunk(const Tensor& x, int64_t b, int i, int64_t heads) const { return x.view((b * Tl + i * Tc) * heads * D, {1, Tc, heads, D}); }
  Tensor doc_chunk(const Tensor& doc, int64_t b, int i) const { return doc.defined() ? doc.view(b * Tl + i * Tc, {1, Tc}) : Tensor(); }
};

// Calls f(b, query chunk, key chunk, mask) for every pair of this rank's query chunks and the key
// chunks of CP rank src in which some query sees some key.
template <typename F>
void for_each_pair(const ContextSplit& split, const Dims& d, int src, const Tensor& doc, F&& f) {
  for (int64_t b = 0; b < d.B; ++b)
    for (int qi = 0; qi < 2; ++qi)
      for (int ki = 0; ki < 2; ++ki) {
        const int64_t q_off = split.chunk_start(qi, split.r), k_off = split.chunk_start(ki, src);
        if (k_off > q_off + d.Tc - 1) continue;  // every key after every query
        f(b, qi, ki, ops::AttentionMask{d.doc_chunk(doc, b, qi), q_off, k_off});
      }
}

// An output tensor (a handle: its data is written) takes src's values.
void write(Tensor dst, const Tensor& src) { dst.copy_from(src); }

void check(const Communicator& cp, const ContextSplit& split, const Tensor& q, const Tensor& k) {
  LT_CHECK(split.c == cp.size() && split.r == cp.rank(), "the split is the CP group's");
  LT_CHECK(split.seq % (2 * split.c) == 0 && q.dim(1) == split.local() && k.dim(1) == split.local(),
           "each rank holds T / c positions of every sequence");
}

// lse [B, H, T/c] <-> chunk-major [B, 2, H, T/2c] (each (sequence, chunk) contiguous, as the
// per-chunk attention calls take it).
void lse_layout(const Dims& d, const Tensor& from, const Tensor& to, bool to_chunks) {
  for (int64_t b = 0; b < d.B; ++b)
    for (int i = 0; i < 2; ++i)
      for (int64_t h = 0; h < d.H; ++h) {
        const int64_t whole = (b * d.H + h) * d.Tl + i * d.Tc, chunked = ((b * 2 + i) * d.H + h) * d.Tc;
        write(to.view(to_chunks ? chunked : whole, {d.Tc}), from.view(to_chunks ? whole : chunked, {d.Tc}));
      }
}

}  // namespace

std::vector<int32_t> local_part(const ContextSplit& split, const int32_t* rows, int64_t batch, int64_t stride) {
  std::vector<int32_t> out(static_cast<size_t>(batch * split.local()));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < split.local(); ++p) out[b * split.local() + p] = rows[b * stride + split.global(p)];
  return out;
}

std::vector<int32_t> global_positions(const ContextSplit& split, int64_t batch) {
  std::vector<int32_t> out(static_cast<size_t>(batch * split.local()));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t p = 0; p < split.local(); ++p) out[b * split.local() + p] = static_cast<int32_t>(split.global(p));
  return out;
}

void context_parallel_attention_fwd(Communicator& cp, const ContextSplit& split, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& o, const Tensor& lse, const Tensor& doc_start, int64_t block_q, int64_t block_k) {
  check(cp, split, q, k);
  const MemoryScope scope(MemCategory::Workspace);  // the ring's buffers live for the call (planner.cpp counts them)
  const Dims d(split, q, k);
  const int c = split.c;
  const Device dev = q.device();
  Tensor acc = Tensor::zeros({d.B, d.Tl, d.H, d.D}, DType::F32, dev), lacc = Tensor::empty({d.B, 2, d.H, d.Tc}, DType::F32, dev);
  {
    Tensor none = Tensor::empty(lacc.shape(), DType::F32);  // -inf: no key seen yet
    std::fill_n(none.data<float>(), none.numel(), kNegInf);
    lacc.copy_from(none);
  }
  KvBlock ring[2] = {kv_block(k, k.dtype()), kv_block(k, k.dtype())};
  const Shape kv_shape = k.shape();
  ring[0].k(kv_shape).copy_from(k);
  ring[0].v(kv_shape).copy_from(v);
  Tensor o_part = Tensor::empty({1, d.Tc, d.H, d.D}, q.dtype(), dev), lse_part = Tensor::empty({1, d.H, d.Tc}, DType::F32, dev);
  for (int s = 0; s < c; ++s) {
    const int src = (split.r - s + c) % c;  // whose block is here
    const KvBlock& here = ring[s & 1];
    Handle next = s + 1 < c ? pass_on(cp, here, ring[(s + 1) & 1]) : Handle();
    const Tensor kb = here.k(kv_shape), vb = here.v(kv_shape);
    for_each_pair(split, d, src, doc_start, [&](int64_t b, int qi, int ki, const ops::AttentionMask& mask) {
      ops::attention_fwd(d.chunk(q, b, qi, d.H), d.chunk(kb, b, ki, d.KV), d.chunk(vb, b, ki, d.KV), o_part, lse_part, mask, block_q,
                         block_k);
      ops::attention_merge(d.chunk(acc, b, qi, d.H), lacc.view((b * 2 + qi) * d.H * d.Tc, {d.H, d.Tc}), o_part, lse_part);
    });
    next.wait();
  }
  write(o, acc);
  lse_layout(d, lacc, lse, false);
}

void context_parallel_attention_bwd(Communicator& cp, const ContextSplit& split, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& o, const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                                    const Tensor& dv, const Tensor& doc_start, int64_t block_q, int64_t block_k) {
  check(cp, split, q, k);
  const MemoryScope scope(MemCategory::Workspace);
  const Dims d(split, q, k);
  const int c = split.c;
  const Device dev = q.device();
  Tensor dq_acc = Tensor::zeros(q.shape(), DType::F32, dev);
  // This rank's block starts with zero gradients; the other buffer receives the ones passed on.
  KvBlock ring[2] = {kv_block(k, k.dtype()), kv_block(k, k.dtype())};
  KvBlock grads[2] = {KvBlock{Tensor::zeros({2 * k.numel()}, DType::F32, dev), k.numel()}, kv_block(k, DType::F32)};
  const Shape kv_shape = k.shape();
  ring[0].k(kv_shape).copy_from(k);
  ring[0].v(kv_shape).copy_from(v);
  Tensor dq_part = Tensor::empty({1, d.Tc, d.H, d.D}, q.dtype(), dev);
  Tensor dk_part = Tensor::empty({1, d.Tc, d.KV, d.D}, k.dtype(), dev), dv_part = Tensor::empty({1, d.Tc, d.KV, d.D}, k.dtype(), dev);
  Tensor lse_chunks = Tensor::empty({d.B, 2, d.H, d.Tc}, DType::F32, dev);
  lse_layout(d, lse, lse_chunks, true);  // the final LSE, per (sequence, chunk)
  for (int s = 0; s < c; ++s) {
    const int src = (split.r - s + c) % c;
    const KvBlock &here = ring[s & 1], &grad = grads[s & 1];
    Handle next = s + 1 < c ? pass_on(cp, here, ring[(s + 1) & 1]) : Handle();
    const Tensor kb = here.k(kv_shape), vb = here.v(kv_shape), dkb = grad.k(kv_shape), dvb = grad.v(kv_shape);
    for_each_pair(split, d, src, doc_start, [&](int64_t b, int qi, int ki, const ops::AttentionMask& mask) {
      ops::attention_bwd(d.chunk(q, b, qi, d.H), d.chunk(kb, b, ki, d.KV), d.chunk(vb, b, ki, d.KV), d.chunk(o, b, qi, d.H),
                         lse_chunks.view((b * 2 + qi) * d.H * d.Tc, {1, d.H, d.Tc}), d.chunk(dout, b, qi, d.H), dq_part, dk_part, dv_part,
                         mask, block_q, block_k);
      ops::accumulate(d.chunk(dq_acc, b, qi, d.H), dq_part);
      ops::accumulate(d.chunk(dkb, b, ki, d.KV), dk_part);
      ops::accumulate(d.chunk(dvb, b, ki, d.KV), dv_part);
    });
    next.wait();
    // The block's gradients follow it; after the last step the ones arriving are this rank's own.
    if (c > 1) pass_on(cp, grad, grads[(s + 1) & 1]).wait();
  }
  const KvBlock& mine = grads[c > 1 ? c & 1 : 0];
  write(dq, dq_acc);
  write(dk, mine.k(kv_shape));
  write(dv, mine.v(kv_shape));
}

}  // namespace llamatron
