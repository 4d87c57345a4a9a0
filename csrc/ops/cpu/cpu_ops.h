// CPU implementations of every op: plain pointers and sizes, storage type T (float or bf16),
// math in fp32. These are the reference the CUDA kernels are checked against, and they are checked
// against PyTorch autograd (tests/unit). Layouts: activations are row-major [rows, features];
// q/k/v are [B, T, heads, D] (the natural output of the projections).
#pragma once
#include <cstdint>

#include "llamatron/dtype.h"

namespace llamatron::cpu {

// y = x * rsqrt(mean(x^2) + eps) * w, per row; saves rstd (fp32) for the backward.
template <typename T>
void rmsnorm_fwd(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t c, float eps);
// dx (= or += when accumulate) and dw += (fp32); dw is reduced in a fixed order (deterministic).
template <typename T>
void rmsnorm_bwd(const T* dy, const T* x, const T* w, const float* rstd, T* dx, float* dw, int64_t rows,
                 int64_t c, bool accumulate_dx);

// In-place rotate-half RoPE on x [B, T, H, D] at positions offset + t, or positions[b * T + t]
// when given (packed documents' position ids). cos/sin tables are [> every position, D/2]. The
// backward is the rotation by the negative angle.
template <typename T>
void rope_fwd(T* x, const float* cos, const float* sin, int64_t b, int64_t t, int64_t h, int64_t d, int64_t offset,
              const int32_t* positions = nullptr);
template <typename T>
void rope_bwd(T* dx, const float* cos, const float* sin, int64_t b, int64_t t, int64_t h, int64_t d, int64_t offset,
              const int32_t* positions = nullptr);
// cos/sin[p, i] = cos/sin(p * theta^(-2i/D)), computed in double and rounded once.
void rope_table(float* cos, float* sin, int64_t max_pos, int64_t d, double theta);

// Causal grouped-query attention, flash style: tiles of block_q query rows against block_k keys
// with an online softmax, so extra memory is O(block_q * (block_k + D)) per thread, never T x T.
// Packed documents: with doc_start ([B, T], non-decreasing along t, doc_start[t] <= its position),
// query t also sees no key before doc_start[t]; key blocks wholly before a query block's first
// document start are skipped, blocks that cross a boundary are masked per row.
// A block of a longer sequence (context parallelism's ring): q holds t positions from global
// position q_offset, k and v tk positions from k_offset (positions and document starts are
// global); a query that sees no key of the block gets O = 0 and LSE = -inf.
struct AttentionShape {
  int64_t b, t, h, kv, d;
  int64_t block_q = 128, block_k = 128;
  const int32_t* doc_start = nullptr;
  int64_t tk = 0, q_offset = 0, k_offset = 0;  // tk 0: t keys
  int64_t keys() const { return tk > 0 ? tk : t; }
};
template <typename T>
void attention_fwd(const T* q, const T* k, const T* v, T* o, float* lse, const AttentionShape& s);
// One task per (batch, KV head) owns dK, dV and the dQ of its query heads: no races, deterministic.
template <typename T>
void attention_bwd(const T* q, const T* k, const T* v, const T* o, const float* lse, const T* dout, T* dq,
                   T* dk, T* dv, const AttentionShape& s);

// acc [n, h, d], acc_lse [h, n] fp32 merged with part [n, h, d], part_lse [h, n] (ops.h).
template <typename T>
void attention_merge(float* acc, float* acc_lse, const T* part, const float* part_lse, int64_t n, int64_t h, int64_t d);

// One new query per sequence against its cached keys (generation with a KV cache): q, o
// [B, 1, H, D], k, v [B, tk, KV, D]; the query is position tk - 1, so every key is visible. fp32
// scores and softmax; in bf16 mode the probabilities are rounded to bf16 before P V, as the
// tiled attention does.
template <typename T>
void attention_decode_fwd(const T* q, const T* k, const T* v, T* o, int64_t b, int64_t tk, int64_t h, int64_t kv, int64_t d);

// SwiGLU on the fused gate/up projection: gate_up rows are [gate (f) | up (f)], one GEMM's output.
// y = silu(gate) * up  [rows, f]; the backward writes dgate_up in the same [gate | up] layout.
template <typename T>
void swiglu_fwd(const T* gate_up, T* y, int64_t rows, int64_t f);
template <typename T>
void swiglu_bwd(const T* dy, const T* gate_up, T* dgate_up, int64_t rows, int64_t f);

// y[i] = table[ids[i]]; dtable[ids[i]] += dy[i] (fp32; parallel over columns, so deterministic).
// A negative id (a token another vocab-parallel rank owns) reads zeros and adds nothing.
template <typename T>
void embedding_fwd(const int32_t* ids, const T* table, T* y, int64_t n, int64_t c);
template <typename T>
void embedding_bwd(const int32_t* ids, const T* dy, float* dtable, int64_t n, int64_t c);

// Fused cross-entropy, one pass per row: returns the summed loss over rows whose target is not
// ignore_index and writes dlogits = scale * (softmax - onehot) (0 for ignored rows). dlogits may
// alias logits. Computes in fp32 row by row; never stores full-vocab fp32 probabilities.
template <typename T>
double cross_entropy_fwd_bwd(const T* logits, const int32_t* targets, T* dlogits, int64_t n, int64_t v,
                             int32_t ignore_index, float scale);

// Vocab-parallel pieces on this rank's shard of the logits [n, v], whose columns [valid, v) are
// vocabulary padding (never part of the softmax). Stats, per row over the valid columns: the max,
// the sum of exp(x - max), and the target's logit if this shard owns global column
// target - vocab_start (else 0). Grad, given the global logz per row: dlogits = scale * (softmax -
// onehot) on the valid columns, 0 on padding and on ignored rows (dlogits may alias logits).
template <typename T>
void cross_entropy_shard_stats(const T* logits, const int32_t* targets, int64_t n, int64_t v, int64_t valid,
                               int64_t vocab_start, int32_t ignore_index, float* row_max, float* row_sumexp,
                               float* target_logit);
template <typename T>
void cross_entropy_shard_grad(const T* logits, const int32_t* targets, const float* logz, T* dlogits, int64_t n,
                              int64_t v, int64_t valid, int64_t vocab_start, int32_t ignore_index, float scale);

// y += x (residual add).
template <typename T>
void add_inplace(T* y, const T* x, int64_t n);
template <typename T>
void accumulate(float* dst, const T* src, int64_t n);
// dst [b, a, block] from src [a, b, block] (blocks of `block_bytes`): the first two dimensions swapped.
void transpose_blocks(const void* src, void* dst, int64_t a, int64_t b, int64_t block_bytes);
// sum of squares in fp64 partials (the global grad norm); deterministic for a fixed thread count.
double sum_squares(const float* x, int64_t n);
void scale_inplace(float* x, int64_t n, float s);
template <typename T>
void convert(const float* src, T* dst, int64_t n);

// One AdamW step on a contiguous range (torch.optim.AdamW semantics, decoupled weight decay):
// master (fp32) is updated, then written to param (T; skipped when param aliases master).
struct AdamWParams {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1-based, for bias correction
  float grad_scale = 1.0f;  // global-norm clipping factor, fused
};
template <typename T>
void adamw_step(float* master, const float* grad, float* m, float* v, T* param, int64_t n, const AdamWParams& p);

}  // namespace llamatron::cpu
