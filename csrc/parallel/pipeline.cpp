#include "llamatron/pipeline.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "llamatron/errors.h"
#include "llamatron/trace.h"

namespace llamatron {
namespace {

using Transfer = Communicator::Transfer;

Handle send_async(Communicator& group, int peer, const Tensor& t) {
  return group.send_recv_async({{Transfer::Send, peer, t.raw(), t.numel(), t.dtype()}});
}
void receive(Communicator& group, int peer, const Tensor& t) {
  group.send_recv_async({{Transfer::Recv, peer, t.raw(), t.numel(), t.dtype()}}).wait();
}

// The trace span of one forward or backward: "forward mb 3", with " chunk 1" when interleaved.
trace::Span op_span(const PipelineOp& op, int chunks) {
  const char* kind = op.forward ? "forward" : "backward";
  return trace::Span(kind, std::string(kind) + " mb " + std::to_string(op.micro_batch) + (chunks > 1 ? " chunk " + std::to_string(op.chunk) : ""),
                     {trace::arg("micro_batch", static_cast<double>(op.micro_batch)), trace::arg("chunk", static_cast<double>(op.chunk))});
}

}  // namespace

std::vector<PipelineOp> pipeline_schedule(int p, int stage, int v, int64_t M) {
  LT_CHECK(p >= 1 && stage >= 0 && stage < p && v >= 1 && M >= 1 && (v == 1 || M % p == 0), "a pipeline schedule's shape");
  const int64_t total = v * M, group = static_cast<int64_t>(p) * v;
  const auto op = [&](int64_t k, bool forward) {
    const int chunk = static_cast<int>(k % group / p);
    return PipelineOp{forward, forward ? chunk : v - 1 - chunk, k / group * p + k % p};
  };
  const int64_t warmup = std::min<int64_t>(p - stage - 1 + static_cast<int64_t>(v - 1) * p, total);
  std::vector<PipelineOp> ops;
  for (int64_t k = 0; k < warmup; ++k) ops.push_back(op(k, true));
  for (int64_t i = 0; i < total - warmup; ++i) ops.push_back(op(warmup + i, true)), ops.push_back(op(i, false));
  for (int64_t i = total - warmup; i < total; ++i) ops.push_back(op(i, false));
  return ops;
}

int64_t pipeline_in_flight(int p, int stage, int v, int64_t M, int chunk) {
  int64_t in_flight = 0, most = 0;
  for (const PipelineOp& op : pipeline_schedule(p, stage, v, M)) {
    if (chunk >= 0 && op.chunk != chunk) continue;
    in_flight += op.forward ? 1 : -1;
    most = std::max(most, in_flight);
  }
  return most;
}

// A forward's input arrives from the previous virtual stage (the previous rank, or for chunk c > 0
// on stage 0 the last rank's chunk c - 1), its output leaves for the next; gradients the other way.
// Activation slots, one pool for all chunks (each slot holds one chunk's layers): a forward takes
// the lowest free one and its backward frees it, by which time the next stage has received its
// output (its gradient came back), so the wait on that send before the slot is reused is over at
// once. The model double-buffers the residual gradient, the buffers swapping at every backward:
// backward j receives into and computes in buffer j % 2, so it first waits for the send that left
// from that buffer (backward j - 2's, if that one sent: with chunks, some backwards of a stage send
// and others do not).
double train_1f1b(LlamaModel& model, Communicator& pp, Communicator& pp_grads, int64_t M,
                  const std::function<const int32_t*(int64_t)>& tokens, int64_t B, int64_t T, float loss_scale) {
  const int p = pp.size(), r = pp.rank(), v = model.shard().chunks;
  const int prev = (r - 1 + p) % p, next = (r + 1) % p, last = p * v - 1;
  const int64_t slots = pipeline_in_flight(p, r, v, M);
  std::vector<Handle> output_sent(slots);  // per slot: its output on the way to the next stage
  std::vector<bool> taken(slots, false);
  std::map<std::pair<int, int64_t>, int> slot_of;  // (chunk, micro-batch) in flight -> its slot
  Handle grad_sent[2];                             // per gradient buffer: its input gradient on the way back
  int64_t backwards = 0;
  double loss = 0;
  for (const PipelineOp& op : pipeline_schedule(p, r, v, M)) {
    const int c = op.chunk, virtual_stage = c * p + r;
    if (op.forward) {
      const int s = static_cast<int>(std::find(taken.begin(), taken.end(), false) - taken.begin());
      LT_CHECK(s < slots, "the schedule has no more micro-batches in flight than pipeline_in_flight counts");
      taken[s] = true, slot_of[{c, op.micro_batch}] = s;
      output_sent[s].wait();
      if (virtual_stage > 0) receive(pp, prev, model.stage_input(s, B, T));
      {
        const trace::Span span = op_span(op, v);
        loss += model.forward_stage(s, tokens(op.micro_batch), B, T, loss_scale, c);
      }
      if (virtual_stage < last) output_sent[s] = send_async(pp, next, model.stage_output(s));
    } else {
      const int s = slot_of.at({c, op.micro_batch});
      Handle& sent = grad_sent[backwards++ % 2];
      sent.wait();
      if (virtual_stage < last) receive(pp_grads, next, model.output_grad());
      {
        const trace::Span span = op_span(op, v);
        model.backward_stage(s, op.micro_batch == M - 1, c);
      }
      if (virtual_stage > 0) sent = send_async(pp_grads, prev, model.input_grad());
      taken[s] = false, slot_of.erase({c, op.micro_batch});
    }
  }
  for (Handle& h : output_sent) h.wait();
  for (Handle& h : grad_sent) h.wait();
  return loss;
}

double forward_pipeline(LlamaModel& model, Communicator& pp, const int32_t* tokens, int64_t B, int64_t T) {
  const int p = pp.size(), r = pp.rank(), v = model.shard().chunks;
  double loss = 0;
  for (int c = 0; c < v; ++c) {  // one micro-batch: stage after stage, chunk after chunk
    const int virtual_stage = c * p + r;
    if (virtual_stage > 0) receive(pp, (r - 1 + p) % p, model.stage_input(0, B, T));
    loss += model.forward_stage(0, tokens, B, T, 0.0f, c);  // scale 0: no gradient is used
    if (virtual_stage < p * v - 1) send_async(pp, (r + 1) % p, model.stage_output(0)).wait();
  }
  return loss;
}

}  // namespace llamatron
