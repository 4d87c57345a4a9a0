// Kernel microbenchmarks at LLaMA-3-8B-sized shapes (C = 4096, F = 14336, 32 heads, 8 KV heads,
// head_dim 128, vocab 128256): median time over N runs, achieved GB/s and, on a GPU, the share of
// the device's peak memory bandwidth (read from the device; L2 flushed between runs, timed with
// CUDA events). Without a GPU it times the CPU implementations of the same ops and says so; it
// never prints a GPU figure it did not measure.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <omp.h>

#include "benchmarks/bench_util.h"
#include "cuda/runtime.h"
#include "ops/cpu/cpu_ops.h"
#ifdef LLAMATRON_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cross_entropy.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/optimizer.cuh"
#include "kernels/rmsnorm.cuh"
#endif

namespace {

using namespace llamatron;
using bench::median_ms;

struct Shape {
  int64_t tokens = 8192, dim = 4096, ffn = 14336, heads = 32, kv_heads = 8, head_dim = 128;
  int64_t vocab = 128256, ce_tokens = 2048, adamw_params = 256ll << 20;
};

struct Case {
  std::string name;
  double bytes;  // moved per run (reads + writes), the op's minimum
};

void print_row(const Case& c, double ms, double peak_gbs) {
  const double gbs = c.bytes / (ms * 1e-3) / 1e9;
  if (peak_gbs > 0)
    std::printf("%-22s %10.3f ms %9.1f GB/s %6.1f%% of peak\n", c.name.c_str(), ms, gbs, 100.0 * gbs / peak_gbs);
  else
    std::printf("%-22s %10.3f ms %9.1f GB/s\n", c.name.c_str(), ms, gbs);
}

std::vector<Case> cases(const Shape& s) {
  const double N = s.tokens, C = s.dim, F = s.ffn, qk = (s.heads + s.kv_heads) * s.head_dim;
  return {{"rmsnorm_forward", 2.0 * 2 * N * C}, {"rope_forward (q and k)", 2.0 * 2 * N * qk},
          {"swiglu_forward", 2.0 * 3 * N * F}, {"adamw (fp32 grads)", 30.0 * s.adamw_params},
          {"cross_entropy", 2.0 * 2 * s.ce_tokens * s.vocab}};
}

void run_cpu(const Shape& s, int runs) {
  std::printf("# no GPU present: timing the CPU implementations (%d OpenMP threads), not the CUDA kernels\n",
              omp_get_max_threads());
  const int64_t N = s.tokens, C = s.dim, F = s.ffn, D = s.head_dim;
  std::vector<bf16> x(N * C, bf16(0.5f)), w(C, bf16(1.0f)), y(N * C), gate_up(N * 2 * F, bf16(0.5f)), act(N * F);
  std::vector<bf16> q(N * s.heads * D, bf16(0.5f)), k(N * s.kv_heads * D, bf16(0.5f));
  std::vector<float> rstd(N), cos(N * D / 2, 1.0f), sin(N * D / 2, 0.0f);
  std::vector<float> master(s.adamw_params, 0.1f), grad(s.adamw_params, 0.01f), m(s.adamw_params), v(s.adamw_params);
  std::vector<bf16> param(s.adamw_params), logits(s.ce_tokens * s.vocab, bf16(0.1f));
  std::vector<int32_t> targets(s.ce_tokens, 7);
  const std::vector<std::function<void()>> ops = {
      [&] { cpu::rmsnorm_fwd<bf16>(x.data(), w.data(), y.data(), rstd.data(), N, C, 1e-5f); },
      [&] {
        cpu::rope_fwd<bf16>(q.data(), cos.data(), sin.data(), 1, N, s.heads, D, 0);
        cpu::rope_fwd<bf16>(k.data(), cos.data(), sin.data(), 1, N, s.kv_heads, D, 0);
      },
      [&] { cpu::swiglu_fwd<bf16>(gate_up.data(), act.data(), N, F); },
      [&] {
        cpu::adamw_step<bf16>(master.data(), grad.data(), m.data(), v.data(), param.data(), s.adamw_params,
                              {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0f});
      },
      [&] { cpu::cross_entropy_fwd_bwd<bf16>(logits.data(), targets.data(), logits.data(), s.ce_tokens, s.vocab, -100, 1.0f); }};
  const auto cs = cases(s);
  for (size_t i = 0; i < cs.size(); ++i) print_row(cs[i], median_ms(runs, [&] { return bench::wall_ms(ops[i]); }), 0);
}

#ifdef LLAMATRON_HAVE_CUDA
void run_gpu(rt::Runtime& r, const Shape& s, int runs) {
  int clock_khz = 0, bus_bits = 0, l2 = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
  const double peak_gbs = 2.0 * clock_khz * 1e3 * bus_bits / 8 / 1e9;  // double data rate
  const rt::DeviceProps p = r.properties(0);
  std::printf("# GPU: %s (sm_%d), peak memory bandwidth %.0f GB/s (from the device), %d-byte L2 flushed per run\n",
              p.name.c_str(), p.sm, peak_gbs, l2);
  const int64_t N = s.tokens, C = s.dim, F = s.ffn, D = s.head_dim, P = s.adamw_params;
  auto alloc = [&](size_t bytes) {
    void* ptr = r.malloc(bytes);
    r.memset(ptr, 0, bytes);
    return ptr;
  };
  using kernels::bf16;
  auto* x = static_cast<bf16*>(alloc(N * C * 2));
  auto* w = static_cast<bf16*>(alloc(C * 2));
  auto* y = static_cast<bf16*>(alloc(N * C * 2));
  auto* rstd = static_cast<float*>(alloc(N * 4));
  auto* q = static_cast<bf16*>(alloc(N * s.heads * D * 2));
  auto* k = static_cast<bf16*>(alloc(N * s.kv_heads * D * 2));
  auto* cs_table = static_cast<float*>(alloc(N * D / 2 * 4));
  auto* gate_up = static_cast<bf16*>(alloc(N * 2 * F * 2));
  auto* act = static_cast<bf16*>(alloc(N * F * 2));
  auto* master = static_cast<float*>(alloc(P * 4));
  auto* grad = static_cast<float*>(alloc(P * 4));
  auto* m = static_cast<float*>(alloc(P * 4));
  auto* v = static_cast<float*>(alloc(P * 4));
  auto* param = static_cast<bf16*>(alloc(P * 2));
  auto* logits = static_cast<bf16*>(alloc(s.ce_tokens * s.vocab * 2));
  auto* targets = static_cast<int*>(alloc(s.ce_tokens * 4));
  auto* losses = static_cast<float*>(alloc(s.ce_tokens * 4));
  auto* range_end = static_cast<int64_t*>(alloc(8));
  auto* range_wd = static_cast<float*>(alloc(4));
  r.memcpy(range_end, &P, 8, rt::Copy::HostToDevice);
  void* flush = alloc(static_cast<size_t>(2 * std::max(l2, 1 << 20)));
  rt::Stream st = r.stream_create();
  auto stream = static_cast<cudaStream_t>(st);
  rt::Event e0 = r.event_create(), e1 = r.event_create();
  auto timed = [&](const std::function<void()>& f) {
    r.memset_async(flush, 0, static_cast<size_t>(2 * std::max(l2, 1 << 20)), st);  // cold L2, as in a real step
    r.event_record(e0, st);
    f();
    r.event_record(e1, st);
    r.event_synchronize(e1);
    return static_cast<double>(r.event_elapsed_ms(e0, e1));
  };
  const auto args = kernels::make_adamw_args(1e-4f, 0.9f, 0.95f, 1e-8f, 1, 1.0f);
  const std::vector<std::function<void()>> ops = {
      [&] { kernels::rmsnorm_forward(x, w, y, rstd, static_cast<int>(N), static_cast<int>(C), 1e-5f, stream); },
      [&] {
        kernels::rope_forward(q, cs_table, cs_table, 1, static_cast<int>(N), static_cast<int>(s.heads), static_cast<int>(D), 0, stream);
        kernels::rope_forward(k, cs_table, cs_table, 1, static_cast<int>(N), static_cast<int>(s.kv_heads), static_cast<int>(D), 0, stream);
      },
      [&] { kernels::swiglu_forward(gate_up, act, N, static_cast<int>(F), stream); },
      [&] { kernels::adamw_step<float>(master, grad, m, v, param, P, range_end, range_wd, 1, args, stream); },
      [&] {
        kernels::cross_entropy_forward_backward(logits, targets, logits, losses, static_cast<int>(s.ce_tokens),
                                                static_cast<int>(s.vocab), 1.0f, -100, stream);
      }};
  const auto cs = cases(s);
  for (size_t i = 0; i < cs.size(); ++i) print_row(cs[i], median_ms(runs, [&] { return timed(ops[i]); }), peak_gbs);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"llamatron kernel microbenchmarks"};
  int runs = 0;
  bool force_cpu = false;
  app.add_option("--runs", runs, "timed runs per kernel (default 20 on a GPU, 3 on the CPU)");
  app.add_flag("--cpu", force_cpu, "time the CPU implementations even if a GPU is present");
  CLI11_PARSE(app, argc, argv);
  const Shape shape;
  bench::on_gpu_or_cpu(
      force_cpu, runs,
      [&](rt::Runtime& gpu, int n) {
#ifdef LLAMATRON_HAVE_CUDA
        run_gpu(gpu, shape, n);
#else
        (void)gpu, (void)n;
#endif
      },
      [&](int n) { run_cpu(shape, n); });
  return 0;
}
