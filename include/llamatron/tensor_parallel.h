// Megatron-style tensor parallelism (FACTS.md): the padded vocabulary and the vocab-parallel
// cross-entropy. The sums after a row-parallel linear (forward) and after a column-parallel
// linear's input gradient (backward) are LlamaModel::sum_partial (an all-reduce, or with sequence
// parallelism a reduce-scatter: sequence_parallel.h). Which weights are split how: llama_param_specs.
#pragma once
#include <cstdint>

#include "llamatron/comm.h"
#include "llamatron/tensor.h"

namespace llamatron {

// The vocabulary rounded up to a multiple of 128 * tp when tp > 1 (equal shards, aligned GEMMs);
// padded rows are never in the loss and never exported.
int64_t padded_vocab(int64_t vocab, int64_t tp);

// Summed loss over the rows of vocab-sharded logits [N, Vl] (this rank holds global columns
// [vocab_start, vocab_start + valid) in its first `valid` columns) and dlogits in place: a max
// all-reduce, then one fused sum all-reduce of the rescaled sums and the target logits.
double vocab_parallel_cross_entropy(Communicator& tp, const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                    int64_t valid, float scale, int32_t ignore_index);

}  // namespace llamatron
