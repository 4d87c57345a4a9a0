// Pipeline parallelism: the 1F1B schedule (FACTS.md) over this rank's stage of the model. Stage s
// of P runs min(P - s - 1, M) warm-up forwards, then alternates one forward and one backward, then
// drains the remaining backwards. Activations go forward and their gradients back point-to-point;
// each send is issued together with the receive it is paired with, so no ordering of ranks can
// deadlock.
#pragma once
#include <cstdint>
#include <functional>

#include "llamatron/comm.h"
#include "llamatron/model.h"

namespace llamatron {

// Forward and backward of `micro_batches` micro-batches (tokens(m): [batch, seq + 1] each) on this
// stage. Returns the summed loss of all micro-batches on the last stage, 0 on the others.
double train_1f1b(LlamaModel& model, Communicator& pp, int64_t micro_batches,
                  const std::function<const int32_t*(int64_t)>& tokens, int64_t batch, int64_t seq, float loss_scale);

// Forward only, one micro-batch through the stages (evaluation): the summed loss on the last
// stage, 0 on the others.
double forward_pipeline(LlamaModel& model, Communicator& pp, const int32_t* tokens, int64_t batch, int64_t seq);

}  // namespace llamatron
