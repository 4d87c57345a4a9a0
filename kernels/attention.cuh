// Flash-style causal GQA attention launchers (kernels/attention.cu): bf16 q/k/v/o, fp32 softmax
// statistics. Layouts as the CPU op (csrc/ops/cpu/cpu_ops.h): q, o [B, T, H, D]; k, v [B, T, KV, D];
// lse [B, H, T] (natural log of the row's softmax denominator, saved for the backward).
#pragma once
#include <cstddef>
#include <string>

#include "kernels/types.h"

namespace llamatron::kernels {

// A block of a longer sequence (context parallelism's ring): q holds t positions from global
// position q_offset, k and v tk (0: t) from k_offset; key j is visible to query i when
// k_offset + j <= q_offset + i (and, with documents, from the query's global document start). A
// query that sees no key of the block gets O = 0 and LSE = -inf.
struct AttentionDims {
  int b, t, h, kv, d;
  int tk = 0, q_offset = 0, k_offset = 0;
  int keys() const { return tk > 0 ? tk : t; }
};

// Empty when the kernels support `dims` (head_dim 64 or 128, h a multiple of kv, t >= 1), else why not.
std::string attention_unsupported(const AttentionDims& dims);

// Query rows per warp of the forward. 32: two m16 tiles share every K/V fragment a warp loads from
// shared memory (half the traffic per mma; 128-row CTAs). 16: 64-row CTAs, more of them per SM.
// Both are tested alike; bench_attention times both.
enum class ForwardTiles { k16RowsPerWarp, k32RowsPerWarp };

// doc_start (optional, int32 [B, T] on the device): packed documents, query t of sequence b sees
// no key before doc_start[b, t] (non-decreasing along t, <= t; include/llamatron/documents.h).
void attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* o, float* lse, const AttentionDims& dims,
                       cudaStream_t stream, ForwardTiles tiles = ForwardTiles::k32RowsPerWarp, const int32_t* doc_start = nullptr);

// Generation with a KV cache: one query per sequence, q, o [B, 1, H, D], against k, v [B, tk, KV, D]
// (the query is position tk - 1: every key is visible). One CTA per (sequence, head), online
// softmax over tiles of keys; memory-bound, so plain fp32 FMAs rather than tensor cores.
void attention_decode(const bf16* q, const bf16* k, const bf16* v, bf16* o, int b, int tk, int h, int kv, int d,
                      cudaStream_t stream);

// Context parallelism's merge (ops.h, attention_merge): acc [n, h, d], acc_lse [h, n] fp32 take
// part [n, h, d], part_lse [h, n] by log-sum-exp weights; one warp per row.
void attention_merge(float* acc, float* acc_lse, const bf16* part, const float* part_lse, int64_t n, int h, int d, cudaStream_t stream);

// Device scratch the backward needs: D = rowsum(dO * O) [B, H, T] and, unless deterministic, the fp32
// dQ accumulator [B, T, H, D]. O(B*H*T*D) at most, never T x T.
size_t attention_backward_workspace_bytes(const AttentionDims& dims, bool deterministic);

// dq, dk, dv are written (not accumulated). deterministic: dQ from a second pass over the keys
// (same bits every run, about 40% more backward FLOPs) instead of fp32 atomics.
void attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* o, const float* lse, const bf16* dout,
                        bf16* dq, bf16* dk, bf16* dv, void* workspace, const AttentionDims& dims, bool deterministic,
                        cudaStream_t stream, const int32_t* doc_start = nullptr);

}  // namespace llamatron::kernels
