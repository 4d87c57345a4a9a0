// Pipeline parallelism: 1F1B and Megatron's interleaved 1F1B (FACTS.md) over this rank's stage of
// the model. With v chunks per stage (parallel.virtual_pipeline; v = 1 is plain 1F1B) the p·v
// layer groups form a virtual pipeline: chunk c of stage s is its stage c·p + s. Activations go
// forward and their gradients back point-to-point, each kind on its own group; a send runs under
// the compute that follows it and is waited on only before its buffer is reused, a receive when its
// data is needed.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "llamatron/comm.h"
#include "llamatron/model.h"

namespace llamatron {

// One forward or backward of one chunk and micro-batch on a stage.
struct PipelineOp {
  bool forward;
  int chunk;
  int64_t micro_batch;
};

// This stage's order of forwards and backwards (M micro-batches, a multiple of `stages` when
// chunks > 1). Virtual micro-batch k < chunks·M is micro-batch (k / (stages·chunks))·stages +
// k % stages of chunk (k % (stages·chunks)) / stages, forwards in that order and backwards with the
// chunks reversed; (stages − stage − 1) + (chunks − 1)·stages forwards warm up (at most all of
// them), then one forward and one backward alternate, then the remaining backwards drain.
std::vector<PipelineOp> pipeline_schedule(int stages, int stage, int chunks, int64_t micro_batches);
// The most micro-batches in flight at once (forward done, backward not) under that order, of all
// chunks together (chunk < 0: the activation slots the stage needs; interleaving needs no more
// than plain 1F1B's, each of a chunk's layers) or of one chunk (the last one's: the head's buffers).
int64_t pipeline_in_flight(int stages, int stage, int chunks, int64_t micro_batches, int chunk = -1);

// Forward and backward of `micro_batches` micro-batches (tokens(m): [batch, seq + 1] each) on this
// stage: activations on `pp`, gradients on `pp_grads` (the same ranks; may be pp itself when each
// link carries one kind anyway, as in plain 1F1B). Returns the summed loss of all micro-batches on
// the last stage, 0 on the others.
double train_1f1b(LlamaModel& model, Communicator& pp, Communicator& pp_grads, int64_t micro_batches,
                  const std::function<const int32_t*(int64_t)>& tokens, int64_t batch, int64_t seq, float loss_scale);

// Forward only, one micro-batch through the stages and their chunks (evaluation): the summed loss
// on the last stage, 0 on the others.
double forward_pipeline(LlamaModel& model, Communicator& pp, const int32_t* tokens, int64_t batch, int64_t seq);

}  // namespace llamatron
