// Megatron-style tensor parallelism's communication (FACTS.md): the sum all-reduce after a
// row-parallel linear (forward) and after a column-parallel linear's input gradient (backward), and
// the vocab-parallel cross-entropy. Which weights are split how: llama_param_specs (model.h).
#pragma once
#include <cstdint>

#include "llamatron/comm.h"
#include "llamatron/tensor.h"

namespace llamatron {

// The vocabulary rounded up to a multiple of 128 * tp when tp > 1 (equal shards, aligned GEMMs);
// padded rows are never in the loss and never exported.
int64_t padded_vocab(int64_t vocab, int64_t tp);

// x = sum of x over the group, in place (bf16 in bf16, as Megatron does over NCCL).
void tp_all_reduce(Communicator& tp, const Tensor& x);

// Summed loss over the rows of vocab-sharded logits [N, Vl] (this rank holds global columns
// [vocab_start, vocab_start + valid) in its first `valid` columns) and dlogits in place: a max
// all-reduce, then one fused sum all-reduce of the rescaled sums and the target logits.
double vocab_parallel_cross_entropy(Communicator& tp, const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                    int64_t valid, float scale, int32_t ignore_index);

}  // namespace llamatron
