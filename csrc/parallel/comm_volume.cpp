#include "llamatron/comm_volume.h"

namespace llamatron {

std::map<std::string, double> step_comm_bytes(const RunConfig& c, const RankPosition& at) {
  std::map<std::string, double> out;
  const auto ring = [](int p) { return 2.0 * (p - 1) / p; };  // all-reduce bytes per byte of payload
  const double act = c.train.precision == "fp32" ? 4 : 2, param = act;
  const double M = static_cast<double>(c.train.grad_accum_steps), N = static_cast<double>(c.train.micro_batch_size * c.train.seq_length);
  const double C = static_cast<double>(c.model.dim), D = static_cast<double>(c.model.head_dim());
  const bool first = at.pp_rank == 0, last = at.pp_rank == at.pp - 1;
  double layers = static_cast<double>(c.model.n_layers / at.pp);
  if (!c.parallel.pipeline_layers.empty()) layers = static_cast<double>(c.parallel.pipeline_layers[at.pp_rank]);
  if (at.tp > 1) {
    // Per micro-batch: after o and down (forward) and after q/k/v and gate/up (backward) in every
    // layer; the embedding (first stage) and the head's input gradient (last stage); the
    // vocab-parallel loss: a max of N floats and one sum of 2N floats.
    // Full recomputation re-runs each layer's attention block in the backward: one more (after o).
    const double per_layer = c.train.recompute == "full" ? 5 : 4;
    const double activations = per_layer * layers + (first ? 1 : 0) + (last ? 1 : 0);
    out["tp.all_reduce"] = M * ring(at.tp) * (activations * N * C * act + (last ? 3 * N * 4 : 0));
    if (at.tp > c.model.n_kv_heads) {  // replicated KV heads: k and v gradients summed over the replicas
      const int replicas = at.tp / static_cast<int>(c.model.n_kv_heads);
      if (replicas > 1) out["tp.sub.all_reduce"] = ring(replicas) * layers * 2 * D * C * 4;
    }
  }
  if (at.pp > 1) {
    out["pp.send"] = M * N * C * act * ((last ? 0 : 1) + (first ? 0 : 1));  // activations on, gradients back
    out["pp.all_reduce"] = ring(at.pp) * 8;                                  // the loss, from the last stage
  }
  if (at.dp > 1) {
    const double wire = c.parallel.grad_reduce_dtype == "bf16" ? 2 : 4;
    out["dp.reduce_scatter"] = (at.dp - 1) * static_cast<double>(at.zero_shard) * wire;
    out["dp.all_gather"] = (at.dp - 1) * static_cast<double>(at.zero_shard) * param;
    out["dp.all_reduce"] = ring(at.dp) * 3 * 8;  // target count, loss, squared grad norm
  }
  if (at.tp * at.pp > 1) out["mp.all_reduce"] = ring(at.tp * at.pp) * 8;  // squared grad norm
  return out;
}

}  // namespace llamatron
