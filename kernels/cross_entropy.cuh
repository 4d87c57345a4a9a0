// Loss and embedding launchers (see kernels/cross_entropy.cu).
#pragma once
#include "kernels/types.h"

namespace llamatron::kernels {

// Per row of logits [rows, v]: losses[row] = logsumexp - logit[target] (0 if ignored) and
// dlogits = scale * (softmax - onehot) (0 rows if ignored). dlogits may be logits.
void cross_entropy_forward_backward(const bf16* logits, const int* targets, bf16* dlogits, float* losses, int rows, int v,
                                    float scale, int ignore_index, cudaStream_t stream);

// Vocab-sharded pieces: per-row (max, sum exp(x - max)) over this shard; and, given the global
// logz = max + log(sum) per row, this shard's dlogits and its share of the target logit (the
// logit on the owning shard, 0 elsewhere; summed over shards, loss = logz - target_logit).
void cross_entropy_shard_stats(const bf16* logits, int rows, int v, float* row_max, float* row_sumexp, cudaStream_t stream);
void cross_entropy_shard_grad(const bf16* logits, const int* targets, const float* logz, bf16* dlogits, float* target_logit,
                              int rows, int v, int vocab_start, float scale, int ignore_index, cudaStream_t stream);

// y[i] = table[ids[i]] (rows of c); dtable[ids[i]] += dy[i] in fp32, deterministically. A negative
// id (a token another vocab-parallel rank owns) reads zeros and adds nothing.
void embedding_forward(const int* ids, const bf16* table, bf16* y, int64_t n, int c, cudaStream_t stream);
void embedding_backward(const int* ids, const bf16* dy, float* dtable, int64_t n, int c, cudaStream_t stream);

}  // namespace llamatron::kernels
