#include "llamatron/comm_volume.h"

namespace llamatron {

std::map<std::string, double> step_comm_bytes(const RunConfig& c, const RankPosition& at) {
  std::map<std::string, double> out;
  const auto ring = [](int p) { return 2.0 * (p - 1) / p; };  // all-reduce bytes per byte of payload
  const double act = c.train.precision == "fp32" ? 4 : 2, param = act;
  // N: a micro-batch's positions on this rank (context parallelism holds T / cp of each sequence).
  const double M = static_cast<double>(c.train.grad_accum_steps), N = static_cast<double>(c.train.micro_batch_size * c.train.seq_length / at.cp);
  const double C = static_cast<double>(c.model.dim), D = static_cast<double>(c.model.head_dim());
  const bool first = at.pp_rank == 0, last = at.pp_rank == at.pp - 1;
  double layers = static_cast<double>(c.model.n_layers / at.pp);
  if (!c.parallel.pipeline_layers.empty()) layers = static_cast<double>(c.parallel.pipeline_layers[at.pp_rank]);
  const bool full_recompute = c.train.recompute == "full";
  const bool sp = c.parallel.sequence_parallel && at.tp > 1;
  if (at.tp > 1 && !sp) {
    // Per micro-batch: after o and down (forward) and after q/k/v and gate/up (backward) in every
    // layer; the embedding (first stage) and the head's input gradient (last stage); the
    // vocab-parallel loss: a max of N floats and one sum of 2N floats.
    // Full recomputation re-runs each layer's attention block in the backward: one more (after o).
    const double per_layer = full_recompute ? 5 : 4;
    const double activations = per_layer * layers + (first ? 1 : 0) + (last ? 1 : 0);
    out["tp.all_reduce"] = M * ring(at.tp) * (activations * N * C * act + (last ? 3 * N * 4 : 0));
  }
  if (sp) {
    // Sequence parallelism, per micro-batch, each collective (t - 1) / t of N x C: a layer's forward
    // gathers xn1 and xn2 and reduce-scatters after o and down; its backward gathers the residual
    // gradient twice, xn2 and xn1 again (for the weight gradients), and reduce-scatters the input
    // gradients of gate/up and q/k/v; full recomputation adds its forward's 2 gathers and the
    // reduce-scatter after o. The embedding: a reduce-scatter, and a gather of its gradient; the
    // head: a gather of xn_f in the forward and again in the backward, a reduce-scatter of dxn.
    // All-reduces: the loss's (as without SP) and, once a step, the norm weights' gradients.
    const double chunk = (at.tp - 1.0) / at.tp * N * C * act;
    const double gathers = (6 + (full_recompute ? 2 : 0)) * layers + (first ? 1 : 0) + (last ? 2 : 0);
    const double scatters = (4 + (full_recompute ? 1 : 0)) * layers + (first ? 1 : 0) + (last ? 1 : 0);
    out["tp.all_gather"] = M * gathers * chunk;
    out["tp.reduce_scatter"] = M * scatters * chunk;
    out["tp.all_reduce"] = ring(at.tp) * ((last ? M * 3 * N * 4 : 0) + (2 * layers + (last ? 1 : 0)) * C * 4);
  }
  if (at.tp > 1 && at.tp > c.model.n_kv_heads) {  // replicated KV heads: k and v gradients summed over the replicas
    const int replicas = at.tp / static_cast<int>(c.model.n_kv_heads);
    if (replicas > 1) out["tp.sub.all_reduce"] = ring(replicas) * layers * 2 * D * C * 4;
  }
  if (at.pp > 1) {
    // Activations on and gradients back, per chunk of the stage (virtual stage k * pp + pp_rank of
    // pp * v): all but the last virtual stage send on, all but the first send back. With SP each TP
    // rank sends its part of the sequence.
    const double rows = sp ? N / at.tp : N;
    const int v = static_cast<int>(c.parallel.virtual_pipeline), stages = at.pp * v;
    int transfers = 0;
    for (int k = 0; k < v; ++k) transfers += (k * at.pp + at.pp_rank < stages - 1) + (k * at.pp + at.pp_rank > 0);
    out["pp.send"] = M * rows * C * act * transfers;
    out["pp.all_reduce"] = ring(at.pp) * 8;                                  // the loss, from the last stage
  }
  if (at.cp > 1) {
    // The ring (context_parallel.cpp), per layer and micro-batch: the forward sends the K/V block on
    // cp - 1 times, the backward K/V cp - 1 times and the fp32 dK/dV cp times; full recomputation
    // runs the forward's ring again. KV heads per TP rank: split, or one replicated.
    const double kv = static_cast<double>(c.model.n_kv_heads % at.tp == 0 ? c.model.n_kv_heads / at.tp : 1) * D;
    const double block = 2 * N * kv, forwards = full_recompute ? 2 : 1;
    out["cp.send"] = M * layers * ((forwards + 1) * (at.cp - 1) * block * act + at.cp * block * 4);
  }
  if (const int shards = at.dp * at.cp; shards > 1) {  // ZeRO-1 over DP x CP (grid.h, grad_group)
    const double wire = c.parallel.grad_reduce_dtype == "bf16" ? 2 : 4;
    out["dp.reduce_scatter"] = (shards - 1) * static_cast<double>(at.zero_shard) * wire;
    out["dp.all_gather"] = (shards - 1) * static_cast<double>(at.zero_shard) * param;
    // The target count over DP; the loss and the squared grad norm over DP x CP.
    out["dp.all_reduce"] = ring(at.dp) * 8 + ring(shards) * 2 * 8;
  }
  if (at.tp * at.pp > 1) out["mp.all_reduce"] = ring(at.tp * at.pp) * 8;  // squared grad norm
  return out;
}

}  // namespace llamatron
