// Context parallelism (parallel.context_parallel = c): every sequence of T positions is cut into 2c
// chunks of T / 2c and rank r of the CP group holds chunks r and 2c - 1 - r, back to back (the
// load-balanced causal split of Megatron, torchtitan and picotron: each rank gets one early and one
// late chunk, so causal attention costs every rank the same). Everything but attention is
// position-wise and runs on the rank's T / c positions; attention runs as a ring (below).
#pragma once
#include <cstdint>
#include <vector>

#include "llamatron/comm.h"
#include "llamatron/ops.h"
#include "llamatron/tensor.h"

namespace llamatron {

struct ContextSplit {
  int c = 1, r = 0;  // CP size, this rank's place in the CP group
  int64_t seq = 0;   // T: the whole sequence
  int64_t chunk() const { return seq / (2 * c); }
  int64_t local() const { return seq / c; }
  // Global position of the first token of local chunk i (0 or 1) on CP rank `rank`.
  int64_t chunk_start(int i, int rank) const { return (i == 0 ? rank : 2 * c - 1 - rank) * chunk(); }
  // Global position of this rank's local position p.
  int64_t global(int64_t p) const { return c == 1 ? p : chunk_start(static_cast<int>(p / chunk()), r) + p % chunk(); }
};

// This rank's entries of B rows of T per-position values (rows at stride `stride`): [B, T / c].
std::vector<int32_t> local_part(const ContextSplit& split, const int32_t* rows, int64_t batch, int64_t stride);
// The global positions of this rank's positions, for each of B sequences: [B, T / c].
std::vector<int32_t> global_positions(const ContextSplit& split, int64_t batch);

// Ring attention over the CP group on this rank's positions: q, o [B, T/c, H, D], k, v
// [B, T/c, KV, D], lse [B, H, T/c], doc_start (optional) [B, T/c] in global positions. Each of
// c steps sends the K/V block it holds (KV heads only: GQA keeps it small) to the next rank with
// a non-blocking transfer while it attends to it (ops::attention_fwd on blocks with their global
// offsets; chunk pairs wholly after the queries are skipped), and merges the partial results by
// their log-sum-exp. The backward passes K/V and their fp32 gradients the same way, each block's
// dK/dV coming home after c steps. Either backend (the tensors' device); c = 1 is plain attention.
void context_parallel_attention_fwd(Communicator& cp, const ContextSplit& split, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& o, const Tensor& lse, const Tensor& doc_start, int64_t block_q, int64_t block_k);
void context_parallel_attention_bwd(Communicator& cp, const ContextSplit& split, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& o, const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                                    const Tensor& dv, const Tensor& doc_start, int64_t block_q, int64_t block_k);

}  // namespace llamatron
