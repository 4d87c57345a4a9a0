// Causal GQA attention: forward (the default 32 query rows per warp, and 16), backward (atomic dQ)
// and backward (deterministic dQ), in TFLOP/s with FlashAttention's convention: forward 4·B·T²·H·d,
// halved for causal; backward 2.5x the forward. On a GPU the tensor-core kernels (kernels/attention.cu), timed with CUDA events, with %
// of the device's bf16 peak (FACTS.md table). Without a GPU it times the CPU attention and says so;
// it never prints a GPU figure it did not measure.
// --doc-len N: also a window packed with documents of N tokens under document masks
// (data.reset_attention_mask), and how much faster the skipped tiles make it (TFLOP/s counted as
// for the whole causal window, so the figure is comparable).
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <omp.h>

#include "benchmarks/bench_util.h"
#include "cuda/runtime.h"
#include "llamatron/hardware.h"
#include "llamatron/random.h"
#include "ops/cpu/cpu_ops.h"
#ifdef LLAMATRON_HAVE_CUDA
#include "kernels/attention.cuh"
#endif

namespace {

using namespace llamatron;

struct Shape {
  int b = 1, t = 4096, h = 32, kv = 8, d = 128;
  int doc_len = 0;  // > 0: documents of this many tokens, back to back
  double fwd_flops() const { return 4.0 * b * t * double(t) * h * d / 2; }  // causal
  double bwd_flops() const { return 2.5 * fwd_flops(); }
};

struct Row {
  const char* name;
  double flops;
  std::function<double()> timed_run;  // ms
};

std::vector<double> print_rows(const std::vector<Row>& rows, int runs, double peak_tflops) {
  std::vector<double> times;
  for (const Row& r : rows) {
    const double ms = bench::median_ms(runs, r.timed_run), tflops = r.flops / (ms * 1e-3) / 1e12;
    times.push_back(ms);
    if (peak_tflops > 0)
      std::printf("%-36s %10.3f ms %8.1f TFLOP/s %6.1f%% of peak\n", r.name, ms, tflops, 100 * tflops / peak_tflops);
    else
      std::printf("%-36s %10.3f ms %8.3f TFLOP/s\n", r.name, ms, tflops);
  }
  return times;
}

// Document starts [b, t] of back-to-back documents of s.doc_len tokens (empty without).
std::vector<int32_t> document_starts(const Shape& s) {
  std::vector<int32_t> out;
  if (s.doc_len <= 0) return out;
  for (int b = 0; b < s.b; ++b)
    for (int t = 0; t < s.t; ++t) out.push_back(t / s.doc_len * s.doc_len);
  return out;
}

// With documents, the rows come in pairs (one window, then documents): the time ratio of each pair.
void print_document_speedups(const Shape& s, const std::vector<Row>& rows, const std::vector<double>& ms) {
  for (size_t i = 0; s.doc_len > 0 && i + 1 < ms.size(); i += 2)
    std::printf("# %s: %.2fx faster with documents of %d tokens (masked tiles skipped)\n", rows[i].name, ms[i] / ms[i + 1], s.doc_len);
}

std::vector<bf16> random_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<bf16> v(n);
  for (auto& x : v) x = bf16(static_cast<float>(rng.normal()));
  return v;
}

void run_cpu(const Shape& s, int runs) {
  std::printf("# no GPU present: timing the CPU attention (%d OpenMP threads), not the CUDA kernels\n", omp_get_max_threads());
  const size_t nq = size_t(s.b) * s.t * s.h * s.d, nkv = size_t(s.b) * s.t * s.kv * s.d;
  const auto q = random_values(nq, 1), k = random_values(nkv, 2), v = random_values(nkv, 3), dout = random_values(nq, 4);
  std::vector<bf16> o(nq), dq(nq), dk(nkv), dv(nkv);
  std::vector<float> lse(size_t(s.b) * s.h * s.t);
  const std::vector<int32_t> docs = document_starts(s);
  cpu::AttentionShape window{s.b, s.t, s.h, s.kv, s.d}, packed = window;
  packed.doc_start = docs.data();
  const auto forward = [&](const cpu::AttentionShape& shape) {
    return [&] { return bench::wall_ms([&] { cpu::attention_fwd<bf16>(q.data(), k.data(), v.data(), o.data(), lse.data(), shape); }); };
  };
  const auto backward = [&](const cpu::AttentionShape& shape) {
    return [&] {
      return bench::wall_ms([&] {
        cpu::attention_bwd<bf16>(q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data(), dq.data(), dk.data(), dv.data(), shape);
      });
    };
  };
  std::vector<Row> rows;
  rows.push_back({"attention forward (CPU)", s.fwd_flops(), forward(window)});
  if (!docs.empty()) rows.push_back({"attention forward, documents (CPU)", s.fwd_flops(), forward(packed)});
  rows.push_back({"attention backward (CPU)", s.bwd_flops(), backward(window)});
  if (!docs.empty()) rows.push_back({"attention backward, documents (CPU)", s.bwd_flops(), backward(packed)});
  print_document_speedups(s, rows, print_rows(rows, runs, 0));
}

#ifdef LLAMATRON_HAVE_CUDA
void run_gpu(rt::Runtime& r, const Shape& s, int runs) {
  const rt::DeviceProps p = r.properties(0);
  const double peak = hardware_peak(p.name).bf16_tflops;
  std::printf("# GPU: %s (sm_%d), bf16 dense peak %s\n", p.name.c_str(), p.sm,
              peak > 0 ? (std::to_string(static_cast<int>(peak)) + " TFLOP/s (FACTS.md)").c_str() : "unknown (no % of peak)");
  const size_t nq = size_t(s.b) * s.t * s.h * s.d, nkv = size_t(s.b) * s.t * s.kv * s.d;
  const kernels::AttentionDims dims{s.b, s.t, s.h, s.kv, s.d};
  auto upload = [&](const std::vector<bf16>& host) {
    void* ptr = r.malloc(host.size() * sizeof(bf16));
    r.memcpy(ptr, host.data(), host.size() * sizeof(bf16), rt::Copy::HostToDevice);
    return static_cast<kernels::bf16*>(ptr);
  };
  auto* q = upload(random_values(nq, 1));
  auto* k = upload(random_values(nkv, 2));
  auto* v = upload(random_values(nkv, 3));
  auto* dout = upload(random_values(nq, 4));
  auto* o = upload(std::vector<bf16>(nq));
  auto* dq = upload(std::vector<bf16>(nq));
  auto* dk = upload(std::vector<bf16>(nkv));
  auto* dv = upload(std::vector<bf16>(nkv));
  auto* lse = static_cast<float*>(r.malloc(size_t(s.b) * s.h * s.t * sizeof(float)));
  const std::vector<int32_t> doc_host = document_starts(s);
  int32_t* docs = nullptr;
  if (!doc_host.empty()) {
    docs = static_cast<int32_t*>(r.malloc(doc_host.size() * sizeof(int32_t)));
    r.memcpy(docs, doc_host.data(), doc_host.size() * sizeof(int32_t), rt::Copy::HostToDevice);
  }
  void* workspace = r.malloc(kernels::attention_backward_workspace_bytes(dims, false));
  rt::Stream st = r.stream_create();
  const auto stream = static_cast<cudaStream_t>(st);
  rt::Event e0 = r.event_create(), e1 = r.event_create();
  auto timed = [&](const std::function<void()>& f) {
    r.event_record(e0, st);
    f();
    r.event_record(e1, st);
    r.event_synchronize(e1);
    return static_cast<double>(r.event_elapsed_ms(e0, e1));
  };
  auto backward = [&](bool deterministic, const int32_t* doc) {
    return [&, deterministic, doc] {
      return timed([&] { kernels::attention_backward(q, k, v, o, lse, dout, dq, dk, dv, workspace, dims, deterministic, stream, doc); });
    };
  };
  auto forward = [&](kernels::ForwardTiles tiles, const int32_t* doc) {
    return [&, tiles, doc] { return timed([&] { kernels::attention_forward(q, k, v, o, lse, dims, stream, tiles, doc); }); };
  };
  std::vector<Row> rows;
  const auto add = [&](const char* name, const char* with_docs, double flops, auto make) {
    rows.push_back({name, flops, make(nullptr)});
    if (docs) rows.push_back({with_docs, flops, make(docs)});
  };
  add("attention forward", "attention forward, documents", s.fwd_flops(),
      [&](const int32_t* d) { return forward(kernels::ForwardTiles::k32RowsPerWarp, d); });
  add("attention forward (16 rows/warp)", "attention forward (16 rows/warp), docs", s.fwd_flops(),
      [&](const int32_t* d) { return forward(kernels::ForwardTiles::k16RowsPerWarp, d); });
  add("attention backward", "attention backward, documents", s.bwd_flops(), [&](const int32_t* d) { return backward(false, d); });
  add("attention backward (determ.)", "attention backward (determ.), docs", s.bwd_flops(),
      [&](const int32_t* d) { return backward(true, d); });
  print_document_speedups(s, rows, print_rows(rows, runs, peak));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"llamatron attention benchmark (causal GQA, FlashAttention FLOP convention)"};
  Shape s;
  int runs = 0;
  bool force_cpu = false;
  app.add_option("--batch", s.b, "batch size");
  app.add_option("--seq", s.t, "sequence length");
  app.add_option("--heads", s.h, "query heads");
  app.add_option("--kv-heads", s.kv, "key/value heads");
  app.add_option("--head-dim", s.d, "head dim (64 or 128 on the GPU)");
  app.add_option("--runs", runs, "timed runs (default 20 on a GPU, 3 on the CPU)");
  app.add_flag("--cpu", force_cpu, "time the CPU attention even if a GPU is present");
  app.add_option("--doc-len", s.doc_len, "also time a window of documents of this many tokens with document masks");
  CLI11_PARSE(app, argc, argv);
  std::printf("# B=%d T=%d H=%d KV=%d d=%d causal; forward %.3g FLOP, backward %.3g FLOP\n", s.b, s.t, s.h, s.kv, s.d,
              s.fwd_flops(), s.bwd_flops());
  bench::on_gpu_or_cpu(
      force_cpu, runs,
      [&](rt::Runtime& gpu, int n) {
#ifdef LLAMATRON_HAVE_CUDA
        run_gpu(gpu, s, n);
#else
        (void)gpu, (void)n;
#endif
      },
      [&](int n) { run_cpu(s, n); });
  return 0;
}
