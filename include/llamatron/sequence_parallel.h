// Sequence parallelism (Megatron's, FACTS.md; docs/parallelism.md): with tensor parallelism over
// t ranks, the tensors outside the column- and row-parallel linears (norms, residual adds, the
// embedding's output) are [B, T/t, C] on each rank, a contiguous chunk of every sequence. These are
// the two collectives over the TP group that move between a chunk and the whole sequence: an
// all-gather before a column-parallel linear, a reduce-scatter of the partial sums after a
// row-parallel one (and their conjugates in the backward).
#pragma once
#include <cstdint>

#include "llamatron/comm.h"
#include "llamatron/tensor.h"

namespace llamatron {

// A gather in flight; wait() returns the whole sequence (a gather of nothing is ready at once).
struct SeqGather {
  Handle handle;
  Tensor staging, full;  // staging undefined: the collective lands in `full` directly
  int64_t batch = 1, ranks = 1;
  Tensor wait();  // a handle to `full`
};

// full [B*T, C] from every rank's local [B*T/t, C]. A collective lands rank after rank, so for
// B > 1 it lands in `staging` ([t, B, T/t, C]) and wait() transposes that into full ([B, T, C]);
// for B == 1 the two orders are the same and staging is not used.
SeqGather seq_all_gather(Communicator& tp, const Tensor& local, const Tensor& full, const Tensor& staging, int64_t batch);
// local [B*T/t, C] = this rank's chunk of the sum over the ranks of `full` [B*T, C] (each rank's
// partial products); for B > 1 full is transposed into `staging` first. The buffers belong to the
// collective until the handle is waited on.
Handle seq_reduce_scatter(Communicator& tp, const Tensor& full, const Tensor& local, const Tensor& staging, int64_t batch);

}  // namespace llamatron
