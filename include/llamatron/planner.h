// The layout planner (`llamatron plan`): per-rank memory of a (tp, pp, cp, dp, micro-batch, recompute)
// layout, computed from the shapes the engine allocates (so tests hold it to the engine's own
// memory accounting), and a first-order step-time model: compute at an assumed GEMM efficiency,
// the 1F1B bubble, the blocking TP / PP collectives over NVLink and the network, and ZeRO-1's DP
// collectives less the part that overlap hides under the backward and the next forward.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llamatron/config.h"

namespace llamatron {

// Bytes one rank holds in steady state, by the categories of the memory accounting (memory.h).
struct MemoryPlan {
  double weights = 0, grads = 0, optimizer = 0, activations = 0, workspace = 0, comm = 0;
  double total() const { return weights + grads + optimizer + activations + workspace + comm; }
};

// The rank at (pp_rank, tp_rank) of c's layout (c.parallel with data_parallel resolved) training
// with c.train's micro-batch, micro-batch count and recompute.
MemoryPlan plan_memory(const RunConfig& c, int pp_rank, int tp_rank = 0);

struct GpuSpec {
  std::string name;           // as given to --gpu
  double memory_gib = 0;      // HBM per GPU
  double bf16_tflops = 0;     // dense peak (FACTS.md)
  double hbm_tbs = 0;         // HBM bandwidth, TB/s (FACTS.md)
  double nvlink_gbs = 0;      // NVLink bandwidth per GPU, one direction, GB/s
  double network_gbs = 0;     // inter-node bandwidth per GPU (one 400 Gb/s NIC per GPU), GB/s
  int gpus_per_node = 8;
  double usd_per_gpu_hour = 0;  // an on-demand cloud price; override with --usd-per-gpu-hour
};
const GpuSpec& gpu_spec(const std::string& name);  // h100-80gb | h200-141gb | a100-80gb | a100-40gb
std::string gpu_names();

struct PlanOptions {
  int gpus = 8;
  GpuSpec gpu;
  double gemm_efficiency = 0.5;  // achieved / peak tensor-core FLOP/s of the step's GEMMs and attention
  double reserve_gib = 2;        // CUDA context, cuBLASLt workspace, allocator rounding: not in the plan
  double tokens = 0;             // token budget for days and cost (0: Chinchilla's 20 tokens per parameter)
  // One layout only (tp, pp, dp > 0): the planner's estimate for that layout at the config's
  // micro-batch size and recompute mode; cp 0 there: parallel.context_parallel of the config.
  int tp = 0, pp = 0, dp = 0, cp = 0;
};

// The data-parallel part of a step with overlap (docs/planner.md, "Overlap"): the gradient buckets'
// reduce-scatter can run under the last micro-batch's backward (a bucket starts when the backward
// has finished it, the buckets one after another on the link), and the parameter all-gather under
// the next step's first forward (a bucket must have arrived when its layers start). What is left
// over is exposed.
struct DpOverlap {
  double last_backward_s = 0, first_forward_s = 0;  // the compute each can hide under
  double grad_comm_s = 0, param_comm_s = 0;         // the collectives at link speed, all buckets
  int buckets = 1;
  bool overlap_grad_reduce = true, overlap_param_gather = true;
};
double exposed_dp_comm(const DpOverlap& o);  // seconds of the step spent waiting on DP communication

struct LayoutPlan {
  int tp = 1, pp = 1, dp = 1, cp = 1;  // cp: context parallelism (each sequence over cp ranks)
  int64_t micro_batch = 1, micro_batches = 1;
  std::string recompute = "none";
  bool sequence_parallel = false;
  int virtual_pipeline = 1;      // model chunks per stage (interleaved 1F1B)
  MemoryPlan memory;             // the fullest rank
  bool fits = false;
  double bubble = 0;             // share of the step the pipeline idles
  double dp_comm_s = 0, exposed_dp_comm_s = 0;  // ZeRO-1's collectives per step, and the part overlap does not hide
  double cp_comm_s = 0, exposed_cp_comm_s = 0;  // the CP ring's K/V (and dK/dV) passes per step, and what attention does not hide
  double step_s = 0, mfu = 0, tokens_per_day = 0, days = 0, cost_usd = 0;
};

// Every valid layout of c.model on opts.gpus GPUs at c's global batch (train.global_batch_size, or
// micro_batch_size x grad_accum_steps x the GPUs when unset) and sequence length, fitting ones first,
// fastest first, then the smallest memory.
std::vector<LayoutPlan> plan_layouts(const RunConfig& c, const PlanOptions& opts);

}  // namespace llamatron
