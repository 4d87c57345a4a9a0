#include "llamatron/planner.h"

#include <algorithm>
#include <cmath>

#include "llamatron/batch_ramp.h"
#include "llamatron/errors.h"
#include "llamatron/model.h"
#include "llamatron/params.h"
#include "llamatron/pipeline.h"
#include "llamatron/tensor_parallel.h"
#include "llamatron/zero1.h"

namespace llamatron {

MemoryPlan plan_memory(const RunConfig& c, int pp_rank, int tp_rank) {
  const ModelConfig& m = c.model;
  const int tp = static_cast<int>(c.parallel.tensor_parallel), pp = static_cast<int>(c.parallel.pipeline_parallel);
  const int64_t cp = c.parallel.context_parallel, dp = c.parallel.data_parallel * cp;  // ZeRO-1 shards over DP x CP
  LT_CHECK(dp >= 1, "plan_memory needs parallel.data_parallel resolved");
  ModelShard shard;
  shard.zero_shards = dp, shard.tp = tp, shard.tp_rank = tp_rank, shard.pp = pp, shard.pp_rank = pp_rank;
  shard.stage_layers = c.parallel.pipeline_layers;
  shard.chunks = static_cast<int>(c.parallel.virtual_pipeline);
  std::vector<ParamSpec> specs = llama_param_specs(m, shard);
  const double n = static_cast<double>(ParamStore::padded_numel(specs, dp)), part = n / static_cast<double>(dp);
  const bool bf16 = c.train.precision == "bf16";
  const double e = bf16 ? 2 : 4;  // bytes of a parameter / activation element

  MemoryPlan p;
  // ParamStore and ZeRO-1 (zero1.h): parameters; fp32 gradients, and their summed shard when dp > 1;
  // Adam's m and v for the shard, and the fp32 master (bf16 mode) of the shard, or whole when dp == 1.
  p.weights = n * e;
  p.grads = n * 4 + (dp > 1 ? part * 4 : 0);
  p.optimizer = 2 * part * 4 + (bf16 ? (dp > 1 ? part : n) * 4 : 0);
  p.comm = dp > 1 && c.parallel.grad_reduce_dtype == "bf16" ? (n + part) * 2 : 0;

  // Activations (LlamaModel::slot): per micro-batch in flight, per layer what the recompute mode keeps.
  const double C = static_cast<double>(m.dim), D = static_cast<double>(m.head_dim());
  const double H = static_cast<double>(m.n_heads / tp), KV = static_cast<double>(m.n_kv_heads % tp == 0 ? m.n_kv_heads / tp : 1);
  const double F = static_cast<double>(m.resolved_ffn_dim() / tp), V = static_cast<double>(padded_vocab(m.vocab_size, tp) / tp);
  const double N = static_cast<double>(c.train.micro_batch_size * c.train.seq_length / cp);  // this rank's positions
  const std::string& rc = c.train.recompute;
  // Sequence parallelism keeps the residual stream and the norms (in, xn1, mid, xn2, out, xn_f and
  // the rstds) at 1/tp of the rows: s is their share.
  const bool sp = c.parallel.sequence_parallel && tp > 1;
  const double s = sp ? 1.0 / tp : 1.0;
  const double cheap = 2 * C * e * s + F * e;                                             // xn1, xn2, act
  const double rest = (2 * H * D + 2 * KV * D + 2 * F) * e + C * e * s + H * 4 + 2 * 4 * s;  // q k v att gate_up, mid; lse, rstds
  const double per_layer = C * e * s + (rc == "none" ? cheap : 0) + (rc == "full" ? 0 : rest);
  const bool last = pp_rank == pp - 1;
  // The slots (the micro-batches the schedule has in flight, any chunk) of a chunk's layers; the
  // head's tensors for the micro-batches of the last stage's last chunk in flight.
  const int64_t M = c.train.grad_accum_steps;
  const double chunk_layers = static_cast<double>(shard.last_layer(m, 0) - shard.first_layer(m, 0));
  const double per_slot = N * (2 * 4 + chunk_layers * per_layer + C * e * s);
  const double head = last ? N * (4 * s + C * e * s + V * e) * static_cast<double>(pipeline_in_flight(pp, pp_rank, shard.chunks, M, shard.chunks - 1)) : 0;
  p.activations = static_cast<double>(pipeline_in_flight(pp, pp_rank, shard.chunks, M)) * per_slot + head;
  // The backward's scratch, the tensors recomputation shares between layers, the RoPE tables.
  // (A pipeline stage double-buffers the residual gradient: one more [N, C], or [N / tp, C] with
  // SP, which also has its local input gradient, two whole-sequence buffers and, for more than one
  // sequence per micro-batch, their two staging copies in the collectives' order.)
  const double sp_buffers = sp ? (s + (c.train.micro_batch_size > 1 ? 4 : 2)) * C * e : 0;
  p.workspace = N * ((C + C * s + 2 * H * D + 2 * KV * D + 3 * F + (pp > 1 ? C * s : 0)) * e + sp_buffers + (rc == "none" ? 0 : cheap) +
                     (rc == "full" ? rest : 0)) +
                static_cast<double>(m.max_seq_len) * D * 4;
  // Context parallelism's ring at its peak, the backward (context_parallel.cpp): the fp32 dQ sum,
  // two K/V blocks in flight and two fp32 dK/dV blocks, the final LSE by chunk, and one chunk pair's
  // partial dQ, dK, dV (a chunk: T / 2cp positions of one sequence).
  const double chunk = static_cast<double>(c.train.seq_length / (2 * cp));
  if (cp > 1) p.workspace += N * (H * D * 4 + 4 * KV * D * e + 4 * KV * D * 4 + H * 4) + chunk * (H * D + 2 * KV * D) * e;
  return p;
}

const GpuSpec& gpu_spec(const std::string& name) {
  // Peaks from FACTS.md; NVLink 4 (H100/H200) 450 GB/s and NVLink 3 (A100) 300 GB/s per direction;
  // one 400 (H100/H200) or 200 (A100) Gb/s NIC per GPU. Prices: typical on-demand cloud rates.
  static const std::vector<GpuSpec> table = {
      {"h100-80gb", 79.6, 989, 3.35, 450, 50, 8, 3.0},
      {"h200-141gb", 140.4, 989, 4.8, 450, 50, 8, 3.8},
      {"a100-80gb", 80, 312, 2.04, 300, 25, 8, 1.8},
      {"a100-40gb", 40, 312, 1.56, 300, 25, 8, 1.3},
  };
  for (const GpuSpec& g : table)
    if (g.name == name) return g;
  throw Error("unknown --gpu '" + name + "': use one of " + gpu_names());
}

std::string gpu_names() { return "h100-80gb, h200-141gb, a100-80gb, a100-40gb"; }

double exposed_dp_comm(const DpOverlap& o) {
  const int n = std::max(1, o.buckets);
  // Gradients: bucket i is final at (i + 1) / n of the last backward; the link takes them in turn.
  double link_free = 0;
  for (int i = 0; i < n; ++i) {
    const double ready = o.overlap_grad_reduce ? (i + 1.0) / n * o.last_backward_s : o.last_backward_s;
    link_free = std::max(link_free, ready) + o.grad_comm_s / n;
  }
  double exposed = link_free - o.last_backward_s;
  // Parameters: the buckets arrive one after another after the update, in forward order; bucket j
  // is needed when the forward, delayed by the waits before it, reaches j / n of its layers.
  double waited = o.overlap_param_gather ? 0 : o.param_comm_s;  // off: all of it before the forward
  for (int j = 0; o.overlap_param_gather && j < n; ++j)
    waited += std::max(0.0, (j + 1.0) / n * o.param_comm_s - (j * o.first_forward_s / n + waited));
  return exposed + waited;
}

namespace {

// Seconds of one optimizer step under layout l (memory already planned), by the model in planner.h.
void estimate_time(const RunConfig& c, const PlanOptions& o, LayoutPlan& l) {
  const ModelConfig& m = c.model;
  const double P = static_cast<double>(m.num_params()), L = static_cast<double>(m.n_layers), C = static_cast<double>(m.dim);
  // N: one micro-batch's positions on one rank (context parallelism splits each sequence over cp).
  const double T = static_cast<double>(c.train.seq_length), N = static_cast<double>(l.micro_batch) * T / l.cp;
  const double M = static_cast<double>(l.micro_batches), e = c.train.precision == "bf16" ? 2 : 4;
  const double model_flops = 6 * P + 12 * L * C * T;  // per token (FACTS.md)
  // Full recomputation runs each layer's forward twice: +2 FLOPs per layer parameter, +4 L C T attention.
  const double layer_params = P - static_cast<double>(m.vocab_size) * C * (m.tie_embeddings ? 1 : 2);
  const double done_flops = model_flops + (l.recompute == "full" ? 2 * layer_params + 4 * L * C * T : 0);
  const double flops_per_s = o.gpu.bf16_tflops * 1e12 * o.gemm_efficiency;
  // One micro-batch on one stage: its compute, its blocking TP collectives over NVLink, and the
  // activation / gradient hand-over to the next stage. Without SP 4 all-reduces per layer (5 with
  // full recomputation), 2 (t - 1) / t of [N, C] each; with SP 6 all-gathers and 4 reduce-scatters
  // (8 and 5), (t - 1) / t each (comm_volume.cpp).
  const double stage_layers = L / l.pp, share_tp = (l.tp - 1.0) / l.tp;
  const bool sp = l.sequence_parallel && l.tp > 1, full = l.recompute == "full";
  double mb = N * done_flops / (l.tp * l.pp) / flops_per_s;  // the load-balanced CP split gives each rank 1/cp of the work
  // The memory-bound ops (norms, RoPE, SwiGLU, residual adds), forward and backward ~3 passes over
  // their tensors, plus selective recomputation's norm and SwiGLU re-runs; at HBM speed.
  const double H = static_cast<double>(m.n_heads), KV = static_cast<double>(m.n_kv_heads), D = static_cast<double>(m.head_dim());
  const double F = static_cast<double>(m.resolved_ffn_dim());
  // The C-wide ones (norms, residual adds) are replicated over TP unless sequence parallelism splits them.
  const double selective = l.recompute == "selective";
  const double wide = 3 * 8 * C + selective * 4 * C, split = 3 * (2 * (H + KV) * D + 3 * F) + selective * 3 * F;
  mb += N * stage_layers * (wide / (sp ? l.tp : 1) + split / l.tp) * e / (o.gpu.hbm_tbs * 1e12);
  const double tp_units = sp ? (full ? 13 : 10) : 2 * (full ? 5 : 4);
  mb += tp_units * stage_layers * N * C * e * share_tp / (o.gpu.nvlink_gbs * 1e9);
  const int node = o.gpu.gpus_per_node;
  const auto link = [&](bool crosses_nodes) { return (crosses_nodes ? o.gpu.network_gbs : o.gpu.nvlink_gbs) * 1e9; };
  // Context parallelism's ring, per layer: the forward passes the K/V block on cp - 1 times, the
  // backward K/V cp - 1 times and their fp32 gradients cp times, each under the attention of the
  // block it arrived with (CP ranks are tp apart); what the attention does not cover is exposed.
  if (l.cp > 1) {
    const double kv_local = (m.n_kv_heads % l.tp == 0 ? KV / l.tp : 1) * D, bw = link(l.tp * l.cp > node);
    const double fwd_bytes = (l.cp - 1) * 2 * N * kv_local * e, bwd_bytes = fwd_bytes + l.cp * 2 * N * kv_local * 4;
    const double attention_fwd = N * 4 * C * T / (2 * l.tp) / flops_per_s;  // causal: half of Q K^T and P V over T keys
    const double per_layer_fwd = fwd_bytes / bw, per_layer_bwd = bwd_bytes / bw;
    const double exposed = std::max(0.0, per_layer_fwd - attention_fwd) + std::max(0.0, per_layer_bwd - 2 * attention_fwd);
    l.cp_comm_s = M * stage_layers * (per_layer_fwd + per_layer_bwd);
    l.exposed_cp_comm_s = M * stage_layers * exposed;
    mb += stage_layers * exposed;
  }
  // Each chunk hands its activations on and its gradients back (stages are tp x cp x dp ranks apart).
  const double v = static_cast<double>(l.virtual_pipeline);
  if (l.pp > 1) mb += 2 * v * N * C * e / (sp ? l.tp : 1) / link(l.tp * l.cp * l.dp >= node);
  // (Interleaved) 1F1B: M micro-batches of v chunks take v M + pp - 1 chunk-slots of mb / v each;
  // the first and last pp - 1 are the bubble.
  l.bubble = (l.pp - 1.0) / (v * M + l.pp - 1.0);
  double step = (M + (l.pp - 1) / v) * mb;
  // ZeRO-1: the gradients reduce-scattered, the parameters all-gathered, over the DP group (tp ranks
  // apart), partly under the last micro-batch's backward and the first one's forward (~1/3 and
  // ~2/3 of its compute: the backward does twice the forward's FLOPs).
  if (const int shards = l.dp * l.cp; shards > 1) {  // over DP x CP
    const double rank_params = P / (l.tp * l.pp), wire = c.parallel.grad_reduce_dtype == "bf16" ? 2 : 4;
    const double bandwidth = link(l.tp * shards > node), share = (shards - 1.0) / shards * rank_params;
    DpOverlap d;
    d.last_backward_s = 2.0 / 3 * mb, d.first_forward_s = mb / 3;
    d.grad_comm_s = share * wire / bandwidth, d.param_comm_s = share * e / bandwidth;
    const double bucket = c.parallel.bucket_size_mb > 0 ? c.parallel.bucket_size_mb * (1 << 20) / 4
                                                        : static_cast<double>(Zero1::bucket_elements(static_cast<int64_t>(rank_params)));
    d.buckets = static_cast<int>(std::clamp(std::round(rank_params / bucket), 1.0, 1e6));
    d.overlap_grad_reduce = c.parallel.overlap_grad_reduce, d.overlap_param_gather = c.parallel.overlap_param_gather;
    l.dp_comm_s = d.grad_comm_s + d.param_comm_s;
    l.exposed_dp_comm_s = exposed_dp_comm(d);
    step += l.exposed_dp_comm_s;
  }
  const double tokens = M * N * l.cp * l.dp;  // whole sequences: the CP ranks share them
  l.step_s = step;
  l.mfu = tokens * model_flops / step / (o.gpus * o.gpu.bf16_tflops * 1e12);
  l.tokens_per_day = tokens / step * 86400;
  const double budget = o.tokens > 0 ? o.tokens : 20 * P;
  l.days = budget / l.tokens_per_day;
  l.cost_usd = l.days * 24 * o.gpus * o.gpu.usd_per_gpu_hour;
}

}  // namespace

std::vector<LayoutPlan> plan_layouts(const RunConfig& base, const PlanOptions& o) {
  constexpr int64_t kLongContext = 32768;  // tokens per sequence from which layouts with context parallelism are listed
  const ModelConfig& m = base.model;
  const int64_t global = base.train.global_batch_size > 0 ? base.train.global_batch_size
                                                          : base.train.micro_batch_size * base.train.grad_accum_steps * o.gpus;
  const BatchRamp ramp(base.train, global);  // each size of a ramp-up must also divide into the layout's micro-batches
  std::vector<LayoutPlan> out;
  // One candidate: planned (the fullest stage decides), timed, kept.
  const auto consider = [&](int tp, int pp, int cp, int dp, int64_t mb, const char* rc, bool sp, int v) {
    RunConfig c = base;
    c.parallel.tensor_parallel = tp, c.parallel.pipeline_parallel = pp, c.parallel.data_parallel = dp;
    c.parallel.context_parallel = cp;
    c.parallel.pipeline_layers.clear();
    c.parallel.sequence_parallel = sp, c.parallel.virtual_pipeline = v;
    c.train.micro_batch_size = mb, c.train.grad_accum_steps = global / (dp * mb), c.train.global_batch_size = 0;
    c.train.recompute = rc;
    LayoutPlan l;
    l.tp = tp, l.pp = pp, l.cp = cp, l.dp = dp, l.micro_batch = mb, l.micro_batches = c.train.grad_accum_steps, l.recompute = rc;
    l.sequence_parallel = sp, l.virtual_pipeline = v;
    for (int r = 0; r < pp; ++r) {
      const MemoryPlan s = plan_memory(c, r);
      if (s.total() > l.memory.total()) l.memory = s;
    }
    l.fits = l.memory.total() / (1 << 30) + o.reserve_gib <= o.gpu.memory_gib;
    estimate_time(c, o, l);
    out.push_back(l);
  };
  const bool one = o.dp > 0;  // one layout: as configured
  for (int tp = 1; tp <= std::min(o.gpus, o.gpu.gpus_per_node); ++tp) {
    if (o.gpus % tp || m.n_heads % tp || (m.n_kv_heads % tp && tp % m.n_kv_heads) || m.resolved_ffn_dim() % tp) continue;
    if (o.tp > 0 && tp != o.tp) continue;
    for (int pp = 1; pp <= o.gpus / tp; ++pp) {
      if ((o.gpus / tp) % pp || m.n_layers % pp || (pp > 1 && m.tie_embeddings)) continue;
      if (o.pp > 0 && pp != o.pp) continue;
      // Context parallelism (CP ranks sit between TP and DP in the grid): powers of two, for long
      // sequences only (kLongContext) unless the config asks for it: below that its ring steps
      // and shorter attention blocks cost more than this model counts, and DP or TP do as well.
      // One layout: the cp asked for. Either way the sequence must cut into 2 cp chunks.
      const int max_cp = base.train.seq_length >= kLongContext || base.parallel.context_parallel > 1 ? o.gpus / (tp * pp) : 1;
      std::vector<int> cps;
      if (one) cps = {o.cp > 0 ? o.cp : static_cast<int>(base.parallel.context_parallel)};
      for (int cp = 1; !one && cp <= max_cp; cp *= 2) cps.push_back(cp);
      for (const int cp : cps) {
        if ((o.gpus / (tp * pp)) % cp || base.train.seq_length % (2 * cp)) continue;
        const int dp = o.gpus / (tp * pp * cp);
        if (one && dp != o.dp) continue;
        if (global % dp) continue;
        const std::vector<int64_t> sizes = one ? std::vector<int64_t>{base.train.micro_batch_size} : std::vector<int64_t>{1, 2, 4, 8, 16};
        for (int64_t mb : sizes) {
          if ((global / dp) % mb || ramp.first_unfit(dp * mb, 1) > 0) continue;
          const int64_t M = global / (dp * mb);
          for (const char* rc : {"none", "selective", "full"})
            for (const bool sp : {false, true})
              for (const int v : {1, 2, 4}) {
                // Sequence parallelism needs TP and whole chunks of the sequence; interleaving needs
                // stages, equal chunks of layers and micro-batches in groups of pp.
                if (one && (rc != base.train.recompute || sp != (base.parallel.sequence_parallel && tp > 1) ||
                            v != (pp > 1 ? base.parallel.virtual_pipeline : 1)))
                  continue;
                if (sp && (tp == 1 || (base.train.seq_length / cp) % tp)) continue;
                if (v > 1 && (pp == 1 || m.n_layers % (pp * v) || M % pp || ramp.first_unfit(dp * mb, pp) > 0)) continue;
                consider(tp, pp, cp, dp, mb, rc, sp, v);
              }
        }
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const LayoutPlan& a, const LayoutPlan& b) {
    if (a.fits != b.fits) return a.fits;
    if (a.step_s != b.step_s) return a.step_s < b.step_s;
    return a.memory.total() < b.memory.total();
  });
  return out;
}

}  // namespace llamatron
