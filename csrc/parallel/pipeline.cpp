#include "llamatron/pipeline.h"

#include <algorithm>
#include <string>
#include <vector>

#include "llamatron/trace.h"

namespace llamatron {
namespace {

using Transfer = Communicator::Transfer;

// The stage's neighbours and the transfers of one exchange: only those that exist at this stage.
struct Links {
  Communicator& pp;
  int stage, stages;
  std::vector<Transfer> pending;
  Links& recv_from_prev(const Tensor& t) { return add(stage > 0, Transfer::Recv, stage - 1, t); }
  Links& send_to_next(const Tensor& t) { return add(stage + 1 < stages, Transfer::Send, stage + 1, t); }
  Links& recv_from_next(const Tensor& t) { return add(stage + 1 < stages, Transfer::Recv, stage + 1, t); }
  Links& send_to_prev(const Tensor& t) { return add(stage > 0, Transfer::Send, stage - 1, t); }
  Handle start() {  // every transfer of this exchange in flight together; they complete together
    Handle h = pending.empty() ? Handle() : pp.send_recv_async(pending);
    pending.clear();
    return h;
  }
  void exchange() { start().wait(); }

 private:
  Links& add(bool exists, Transfer::Kind kind, int peer, const Tensor& t) {
    if (exists) pending.push_back({kind, peer, t.raw(), t.numel(), t.dtype()});
    return *this;
  }
};

trace::Args micro_batch(int64_t m) { return {trace::arg("micro_batch", static_cast<double>(m))}; }

}  // namespace

// Sends run under the compute that follows them: a stage's output is waited on before its slot's
// next forward overwrites it, an input gradient before the backward after next (the model
// double-buffers it). Receives are waited on when their data is needed, which in 1F1B is at once.
double train_1f1b(LlamaModel& model, Communicator& pp, int64_t M, const std::function<const int32_t*(int64_t)>& tokens,
                  int64_t B, int64_t T, float loss_scale) {
  Links link{pp, pp.rank(), pp.size(), {}};
  const int64_t warmup = std::min<int64_t>(pp.size() - pp.rank() - 1, M), steady = M - warmup;
  // At most warmup + 1 micro-batches are in flight; micro-batch m lives in slot m % slots, which
  // is free again by the time m + slots starts.
  const int slots = static_cast<int>(warmup + 1);
  const auto slot = [&](int64_t m) { return static_cast<int>(m % slots); };
  std::vector<Handle> output_sent(slots);  // per slot: its output on the way to the next stage
  Handle grad_sent;                         // the last input gradient on the way to the previous stage
  double loss = 0;
  const auto forward = [&](int64_t m) {
    output_sent[slot(m)].wait();
    const trace::Span span("forward", "forward mb " + std::to_string(m), micro_batch(m));
    loss += model.forward_stage(slot(m), tokens(m), B, T, loss_scale);
  };
  const auto backward = [&](int64_t m) {
    const trace::Span span("backward", "backward mb " + std::to_string(m), micro_batch(m));
    model.backward_stage(slot(m), m == M - 1);
    grad_sent = link.send_to_prev(model.input_grad()).start();  // waits for the one before (the other buffer)
  };
  for (int64_t m = 0; m < warmup; ++m) {
    link.recv_from_prev(model.stage_input(slot(m), B, T)).exchange();
    forward(m);
    output_sent[slot(m)] = link.send_to_next(model.stage_output(slot(m))).start();
  }
  if (steady > 0) link.recv_from_prev(model.stage_input(slot(warmup), B, T)).exchange();
  for (int64_t i = 0; i < steady; ++i) {
    const int64_t f = warmup + i;  // forward micro-batch f, then the backward of micro-batch i
    forward(f);
    link.send_to_next(model.stage_output(slot(f))).recv_from_next(model.output_grad()).exchange();
    backward(i);
    if (i + 1 < steady) link.recv_from_prev(model.stage_input(slot(f + 1), B, T)).exchange();
  }
  for (int64_t m = steady; m < M; ++m) {  // cool-down: the warm-up micro-batches' backwards
    link.recv_from_next(model.output_grad()).exchange();
    backward(m);
  }
  for (Handle& h : output_sent) h.wait();
  grad_sent.wait();
  return loss;
}

double forward_pipeline(LlamaModel& model, Communicator& pp, const int32_t* tokens, int64_t B, int64_t T) {
  Links link{pp, pp.rank(), pp.size(), {}};
  link.recv_from_prev(model.stage_input(0, B, T)).exchange();
  const double loss = model.forward_stage(0, tokens, B, T, 0.0f);  // scale 0: no gradient is used
  link.send_to_next(model.stage_output(0)).exchange();
  return loss;
}

}  // namespace llamatron
