#include "llamatron/pipeline.h"

#include <algorithm>
#include <vector>

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
  void exchange() {  // every transfer of this exchange in flight together, then all complete
    if (!pending.empty()) pp.send_recv(pending);
    pending.clear();
  }

 private:
  Links& add(bool exists, Transfer::Kind kind, int peer, const Tensor& t) {
    if (exists) pending.push_back({kind, peer, t.raw(), t.numel(), t.dtype()});
    return *this;
  }
};

}  // namespace

double train_1f1b(LlamaModel& model, Communicator& pp, int64_t M, const std::function<const int32_t*(int64_t)>& tokens,
                  int64_t B, int64_t T, float loss_scale) {
  Links link{pp, pp.rank(), pp.size(), {}};
  const int64_t warmup = std::min<int64_t>(pp.size() - pp.rank() - 1, M), steady = M - warmup;
  // At most warmup + 1 micro-batches are in flight; micro-batch m lives in slot m % slots, which
  // is free again by the time m + slots starts.
  const int slots = static_cast<int>(warmup + 1);
  const auto slot = [&](int64_t m) { return static_cast<int>(m % slots); };
  double loss = 0;
  const auto forward = [&](int64_t m) { loss += model.forward_stage(slot(m), tokens(m), B, T, loss_scale); };
  for (int64_t m = 0; m < warmup; ++m) {
    link.recv_from_prev(model.stage_input(slot(m), B, T)).exchange();
    forward(m);
    link.send_to_next(model.stage_output(slot(m))).exchange();
  }
  if (steady > 0) link.recv_from_prev(model.stage_input(slot(warmup), B, T)).exchange();
  for (int64_t i = 0; i < steady; ++i) {
    const int64_t f = warmup + i;  // forward micro-batch f, then the backward of micro-batch i
    forward(f);
    link.send_to_next(model.stage_output(slot(f))).recv_from_next(model.output_grad()).exchange();
    model.backward_stage(slot(i));
    link.send_to_prev(model.input_grad());
    if (i + 1 < steady) link.recv_from_prev(model.stage_input(slot(f + 1), B, T));
    link.exchange();
  }
  for (int64_t m = steady; m < M; ++m) {  // cool-down: the warm-up micro-batches' backwards
    link.recv_from_next(model.output_grad()).exchange();
    model.backward_stage(slot(m));
    link.send_to_prev(model.input_grad()).exchange();
  }
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
