// The op interface the model calls: one function per op and direction, on Tensors. Each checks
// shapes and dtypes, then dispatches on the device (the CPU implementations live in
// csrc/ops/cpu; the CUDA kernels of #4 plug in behind the same functions).
// Conventions: activations [rows, features]; q/k/v [B, T, heads, D]; weights [out, in], y = x W^T;
// weight/norm gradients are fp32 and accumulate (+=) so micro-batches add up.
// Tensors are handles: outputs are passed as const handles and written through.
#pragma once
#include <cstdint>

#include "llamatron/tensor.h"

namespace llamatron::ops {

// Linear: leading dimensions flatten to rows (q [B,T,H,D] is [B*T, H*D]).
// y = x W^T.  x [M, K], w [N, K] -> y [M, N].
void linear_fwd(const Tensor& x, const Tensor& w, const Tensor& y);
// dx (=, or += when accumulate) dy W.  dy [M, N], w [N, K] -> dx [M, K].
void linear_bwd_data(const Tensor& dy, const Tensor& w, const Tensor& dx, bool accumulate);
// dw += dy^T x (fp32).  dy [M, N], x [M, K] -> dw [N, K].
void linear_bwd_weight(const Tensor& dy, const Tensor& x, const Tensor& dw);

void rmsnorm_fwd(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd);
void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx, const Tensor& dw,
                 bool accumulate_dx);

// In place on x [B, T, H, D]; cos/sin tables [max_pos, D/2] fp32. Position offset + t, or
// positions[b, t] (int32 [B, T], packed documents' position ids) when that is defined.
void rope_fwd(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t offset, const Tensor& positions = {});
void rope_bwd(const Tensor& dx, const Tensor& cos, const Tensor& sin, int64_t offset, const Tensor& positions = {});

// Which keys a query sees besides the causal rule, and where q and k sit in the sequence.
struct AttentionMask {
  Tensor doc_start;  // optional int32 [B, Tq] (documents.h): query i sees no key before position doc_start[b, i]
  // Global positions of q[:, 0] and k[:, 0] (context parallelism's ring runs blocks of a longer
  // sequence): key j is visible to query i when k_offset + j <= q_offset + i. A query
  // that sees no key of the block gets o = 0 and lse = -inf.
  int64_t q_offset = 0, k_offset = 0;
};

// Causal GQA. q [B,Tq,H,D], k/v [B,Tk,KV,D] -> o [B,Tq,H,D], lse [B,H,Tq] fp32 (Tq = Tk for a whole
// sequence).
void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                   const AttentionMask& mask = {}, int64_t block_q = 128, int64_t block_k = 128);
void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                   const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv, const AttentionMask& mask = {},
                   int64_t block_q = 128, int64_t block_k = 128);

// Context parallelism's merge of a block's partial attention into the running result, per row
// (h, i): acc [N, H, D] and acc_lse [H, N] fp32 become the softmax-weighted combination with part
// [N, H, D] and part_lse [H, N] (log-sum-exp weights); rows with part_lse = -inf are unchanged.
void attention_merge(const Tensor& acc, const Tensor& acc_lse, const Tensor& part, const Tensor& part_lse);

// Generation with a KV cache: one new query per sequence, q, o [B, 1, H, D], against the keys and
// values [B, tk, KV, D] of all its positions so far (the query's own last): no mask is needed.
void attention_decode_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o);

// gate_up [rows, 2F] = [gate | up] per row (the fused projection's output) -> y [rows, F].
void swiglu_fwd(const Tensor& gate_up, const Tensor& y);
void swiglu_bwd(const Tensor& dy, const Tensor& gate_up, const Tensor& dgate_up);

// ids int32 [N] (any shape), table [V, C] -> y [N, C]; dtable (fp32) += scatter of dy. A negative
// id reads zeros and adds nothing (tokens of another vocab-parallel rank).
void embedding_fwd(const Tensor& ids, const Tensor& table, const Tensor& y);
void embedding_bwd(const Tensor& ids, const Tensor& dy, const Tensor& dtable);

// Fused loss and gradient: returns the summed loss over targets != ignore_index and writes
// dlogits = scale * (softmax - onehot). dlogits may be logits itself.
double cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, const Tensor& dlogits, float scale,
                             int32_t ignore_index = -100);

// Vocab-parallel cross-entropy pieces on this rank's logits shard [N, Vl] whose columns [valid, Vl)
// are padding (csrc/ops/cpu/cpu_ops.h): per-row max, sum exp and owned target logit (fp32 [N]);
// then, from the global logz [N], dlogits (may be logits).
void cross_entropy_shard_stats(const Tensor& logits, const Tensor& targets, int64_t valid, int64_t vocab_start,
                               const Tensor& row_max, const Tensor& row_sumexp, const Tensor& target_logit,
                               int32_t ignore_index = -100);
void cross_entropy_shard_grad(const Tensor& logits, const Tensor& targets, const Tensor& logz, const Tensor& dlogits,
                              int64_t valid, int64_t vocab_start, float scale, int32_t ignore_index = -100);

void add_inplace(const Tensor& y, const Tensor& x);
// dst (fp32) += src (fp32 or bf16), same numel: sums of partial gradients kept in fp32.
void accumulate(const Tensor& dst, const Tensor& src);

// dst = src viewed as [a, b, K] with its first two dimensions swapped ([b, a, K]); same numel and
// dtype, a multiple of a * b elements. Sequence parallelism's chunk order: a collective moves
// [ranks, B, T/ranks, C] and the model reads [B, T, C].
void transpose_blocks(const Tensor& src, const Tensor& dst, int64_t a, int64_t b);

}  // namespace llamatron::ops
