#include "llamatron/sequence_parallel.h"

#include <vector>

#include "llamatron/errors.h"
#include "llamatron/ops.h"

namespace llamatron {
namespace {

void check_shapes(const Communicator& tp, const Tensor& local, const Tensor& full, const Tensor& staging, int64_t batch) {
  LT_CHECK(full.numel() == local.numel() * tp.size() && local.dtype() == full.dtype(), "a sequence chunk is 1/t of the whole");
  LT_CHECK(batch == 1 || (staging.numel() == full.numel() && staging.dtype() == full.dtype()), "B > 1 needs a staging buffer");
}

}  // namespace

Tensor SeqGather::wait() {
  if (handle.pending()) {
    handle.wait();
    if (batch > 1) ops::transpose_blocks(staging, full, ranks, batch);  // [t, B, T/t, C] -> [B, t, T/t, C]
  }
  return full;
}

SeqGather seq_all_gather(Communicator& tp, const Tensor& local, const Tensor& full, const Tensor& staging, int64_t batch) {
  check_shapes(tp, local, full, staging, batch);
  SeqGather g;
  g.staging = batch > 1 ? staging : Tensor(), g.full = full, g.batch = batch, g.ranks = tp.size();
  const Tensor& into = batch > 1 ? staging : full;
  g.handle = tp.all_gather_async(local.raw(), into.raw(), std::vector<int64_t>(tp.size(), local.numel()), local.dtype());
  return g;
}

Handle seq_reduce_scatter(Communicator& tp, const Tensor& full, const Tensor& local, const Tensor& staging, int64_t batch) {
  check_shapes(tp, local, full, staging, batch);
  if (batch > 1) ops::transpose_blocks(full, staging, batch, tp.size());  // [B, t, T/t, C] -> [t, B, T/t, C]
  const Tensor& from = batch > 1 ? staging : full;
  return tp.reduce_scatter_async(from.raw(), local.raw(), std::vector<int64_t>(tp.size(), local.numel()), local.dtype(), ReduceOp::Sum);
}

}  // namespace llamatron
