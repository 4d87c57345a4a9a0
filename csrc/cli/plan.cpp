#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.h"
#include "llamatron/batch_ramp.h"
#include "llamatron/config.h"
#include "llamatron/errors.h"

namespace llamatron {

namespace {
std::string money(double usd) {
  if (usd >= 1e6) return fmt::format("${:.2f}M", usd / 1e6);
  if (usd >= 1e4) return fmt::format("${:.0f}k", usd / 1e3);
  return fmt::format("${:.0f}", usd);
}
}  // namespace

int cmd_plan(const std::string& config_path, const std::vector<std::string>& overrides, PlanOptions o, const std::string& gpu,
             int top, const PlanHardware& hw) {
  RunConfig c = load_config(config_path, overrides);
  if (o.gpus < 1) throw Error("--gpus must be >= 1");
  if (!(o.gemm_efficiency > 0 && o.gemm_efficiency <= 1)) throw Error("--gemm-efficiency must be in (0, 1], e.g. 0.5");
  if (!(o.tokens >= 0) || !(o.gpu.usd_per_gpu_hour >= 0)) throw Error("--tokens and --usd-per-gpu-hour must be >= 0");
  if (top < 1) throw Error("--top must be >= 1");
  const double usd = o.gpu.usd_per_gpu_hour;
  o.gpu = gpu_spec(gpu);
  if (usd > 0) o.gpu.usd_per_gpu_hour = usd;
  // Another machine's figures (benchmarks/overlap.sh gives a CPU's measured FLOP/s and a shaped link).
  if (hw.tflops > 0) o.gpu.bf16_tflops = hw.tflops, o.gpu.name += " at " + fmt::format("{:g}", hw.tflops) + " TFLOP/s";
  if (hw.network_gbs > 0) o.gpu.network_gbs = hw.network_gbs;
  if (hw.per_node > 0) o.gpu.gpus_per_node = hw.per_node;
  if (!hw.layout.empty()) {
    const auto& L = hw.layout;
    const int cp = L.size() == 4 ? L[3] : 1;
    if ((L.size() != 3 && L.size() != 4) || L[0] < 1 || L[1] < 1 || L[2] < 1 || cp < 1 || L[0] * L[1] * L[2] * cp != o.gpus)
      throw Error("--layout is TP,PP,DP or TP,PP,DP,CP with their product = --gpus (" + std::to_string(o.gpus) + ")");
    o.tp = L[0], o.pp = L[1], o.dp = L[2], o.cp = cp;
  }
  const std::vector<LayoutPlan> plans = plan_layouts(c, o);
  if (plans.empty())
    throw Error("no layout of this model fits " + std::to_string(o.gpus) + " GPUs at this global batch: the batch must divide over "
                "the data-parallel ranks and tensor_parallel must divide n_heads and the FFN width; try another --gpus or "
                "train.global_batch_size");
  const double P = static_cast<double>(c.model.num_params()), budget = o.tokens > 0 ? o.tokens : 20 * P;
  const LayoutPlan& first = plans.front();
  std::printf("%s\n", describe(c.model).c_str());
  std::printf("%d x %s (%.1f GiB, %.0f TFLOP/s bf16, $%.2f/GPU-hour) | global batch %lld x %lld tokens | budget %.3g tokens%s\n",
              o.gpus, o.gpu.name.c_str(), o.gpu.memory_gib, o.gpu.bf16_tflops, o.gpu.usd_per_gpu_hour,
              static_cast<long long>(first.micro_batch * first.micro_batches * first.dp), static_cast<long long>(c.train.seq_length),
              budget, o.tokens > 0 ? "" : " (Chinchilla: 20 per parameter)");
  if (const BatchRamp ramp(c.train, first.micro_batch * first.micro_batches * first.dp); ramp.on())
    std::printf("batch ramp-up: %s; the table is at the full batch, and lists only layouts whose micro-batches divide every "
                "size of the ramp\n", ramp.describe().c_str());
  std::printf("Estimates, not measurements: GEMMs at %.0f%% of peak, collectives at link speed (ZeRO-1's partly hidden "
              "by overlap), %.1f GiB per GPU reserved for the CUDA context and workspaces (docs/planner.md).\n\n",
              100 * o.gemm_efficiency, o.reserve_gib);
  std::printf("rank  tp pp  v  cp  dp  sp  mb    M  recompute   GiB/GPU = weights + grads + optim + activ +  comm + other   fits  "
              "bubble  step s   MFU  Mtok/day    days     cost  DP comm s (exposed)  CP ring s (exposed)\n");
  const auto gib = [](double b) { return b / (1 << 30); };
  int fitting = 0;
  for (const LayoutPlan& l : plans) fitting += l.fits;
  for (int i = 0; i < static_cast<int>(plans.size()) && i < top; ++i) {
    const LayoutPlan& l = plans[i];
    const MemoryPlan& m = l.memory;
    std::printf("%4d %3d %2d %2d %3d %3d %3s %3lld %4lld  %-9s %9.1f = %7.1f + %5.1f + %5.1f + %5.1f + %5.1f + %5.1f   %-4s  %5.1f%%  %6.2f  "
                "%4.1f%%  %8.0f  %6.3g  %7s  %.3g (%.3g)%s\n",
                i + 1, l.tp, l.pp, l.virtual_pipeline, l.cp, l.dp, l.sequence_parallel ? "on" : "-", static_cast<long long>(l.micro_batch), static_cast<long long>(l.micro_batches),
                l.recompute.c_str(), gib(m.total()) + o.reserve_gib, gib(m.weights), gib(m.grads), gib(m.optimizer),
                gib(m.activations), gib(m.comm), gib(m.workspace) + o.reserve_gib, l.fits ? "yes" : "NO", 100 * l.bubble, l.step_s,
                100 * l.mfu, l.tokens_per_day / 1e6, l.days < 10 ? l.days : std::round(l.days),
                money(l.cost_usd).c_str(), l.dp_comm_s, l.exposed_dp_comm_s,
                l.cp > 1 ? fmt::format("  {:.3g} ({:.3g})", l.cp_comm_s, l.exposed_cp_comm_s).c_str() : "");
  }
  if (o.dp > 0) {  // one layout: its fullest rank in the units and categories of the training log's memory line
    const auto mib = [](double b) { return b / (1 << 20); };
    const MemoryPlan& m = first.memory;
    std::printf("\nmemory (fullest rank, MiB, planned): weights %.1f | grads %.1f | optimizer %.1f | activations %.1f | workspace %.1f | "
                "comm %.1f | total %.1f\n",
                mib(m.weights), mib(m.grads), mib(m.optimizer), mib(m.activations), mib(m.workspace), mib(m.comm), mib(m.total()));
  }
  for (int i = 0; i < static_cast<int>(plans.size()) && i < top; ++i)
    if (plans[i].cp > 1) {
      std::printf("\ncp > 1: context parallelism, each sequence over cp ranks (ring attention, docs/parallelism.md).\n");
      break;
    }
  std::printf("\n%zu layouts, %d fit; %s\n", plans.size(), fitting,
              fitting ? fmt::format("recommended: parallel.tensor_parallel={} parallel.pipeline_parallel={} parallel.data_parallel={} "
                                    "parallel.virtual_pipeline={} parallel.sequence_parallel={} train.micro_batch_size={} train.recompute={}{}",
                                    first.tp, first.pp, first.dp, first.virtual_pipeline, first.sequence_parallel, first.micro_batch,
                                    first.recompute, first.cp > 1 ? fmt::format(" parallel.context_parallel={}", first.cp) : "").c_str()
                      : "none fits: more GPUs, a larger GPU, or a smaller global batch / sequence");
  return fitting ? 0 : 1;
}

}  // namespace llamatron
