// Loss and embedding launchers (see kernels/cross_entropy.cu).
#pragma once
#include "kernels/types.h"

namespace llamatron::kernels {

// Per row of logits [rows, v]: losses[row] = logsumexp - logit[target] (0 if ignored) and
// dlogits = scale * (softmax - onehot) (0 rows if ignored). dlogits may be logits.
void cross_entropy_forward_backward(const bf16* logits, const int* targets, bf16* dlogits, float* losses, int rows, int v,
                                    float scale, int ignore_index, cudaStream_t stream);

// Vocab-sharded pieces on rows of v columns whose first `valid` are this shard's vocabulary
// [vocab_start, vocab_start + valid) (the rest is padding, outside the softmax). Stats, per row: the
// max and sum exp(x - max) over the valid columns, and the target's logit if this shard owns it
// (else 0; summed over shards, loss = logz - target_logit). Grad, given the global logz = max +
// log(sum) per row: this shard's dlogits (0 on padding and on ignored rows; may be logits).
void cross_entropy_shard_stats(const bf16* logits, const int* targets, int rows, int v, int valid, int vocab_start,
                               int ignore_index, float* row_max, float* row_sumexp, float* target_logit, cudaStream_t stream);
void cross_entropy_shard_grad(const bf16* logits, const int* targets, const float* logz, bf16* dlogits, int rows, int v,
                              int valid, int vocab_start, float scale, int ignore_index, cudaStream_t stream);

// y[i] = table[ids[i]] (rows of c); dtable[ids[i]] += dy[i] in fp32, deterministically. A negative
// id (a token another vocab-parallel rank owns) reads zeros and adds nothing.
void embedding_forward(const int* ids, const bf16* table, bf16* y, int64_t n, int c, cudaStream_t stream);
void embedding_backward(const int* ids, const bf16* dy, float* dtable, int64_t n, int c, cudaStream_t stream);

}  // namespace llamatron::kernels
