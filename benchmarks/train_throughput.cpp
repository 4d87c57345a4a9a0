// Training throughput of the CPU backend: full steps (forward, backward, AdamW) on the shape of
// benchmarks/torch_train.py, median step time after warm-up. A benchmark, not a test: it prints.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "llamatron/trainer.h"
#include "ops/cpu/gemm.h"

int main(int argc, char** argv) {
  int64_t vocab = 8192, dim = 512, layers = 8, heads = 8, kv = 2, ffn = 1408, batch = 8, seq = 256;
  int threads = 2, warmup = 2, steps = 5;
  std::string dtype = "bf16";
  CLI::App app{"llamatron CPU training throughput"};
  app.add_option("--vocab", vocab);
  app.add_option("--dim", dim);
  app.add_option("--layers", layers);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv);
  app.add_option("--ffn", ffn);
  app.add_option("--batch", batch);
  app.add_option("--seq", seq);
  app.add_option("--threads", threads);
  app.add_option("--dtype", dtype)->check(CLI::IsMember({"bf16", "fp32"}));
  app.add_option("--warmup", warmup);
  app.add_option("--steps", steps);
  CLI11_PARSE(app, argc, argv);

  auto s = [](auto v) { return std::to_string(v); };
  const llamatron::RunConfig cfg = llamatron::parse_config(
      "{}", {"model.vocab_size=" + s(vocab), "model.dim=" + s(dim), "model.n_layers=" + s(layers), "model.n_heads=" + s(heads),
             "model.n_kv_heads=" + s(kv), "model.ffn_dim=" + s(ffn), "model.max_seq_len=" + s(seq),
             "train.micro_batch_size=" + s(batch), "train.seq_length=" + s(seq), "train.precision=" + dtype,
             "train.threads=" + s(threads), "train.steps=" + s(warmup + steps), "schedule.decay_style=constant",
             "data.markov_branching=4"});
  llamatron::Trainer trainer(cfg);
  std::vector<double> ms;
  for (int i = 0; i < warmup + steps; ++i) {
    const auto st = trainer.step();
    if (i >= warmup) ms.push_back(st.step_ms);
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const llamatron::cpu::GemmArgs probe{dtype == "bf16" ? llamatron::DType::BF16 : llamatron::DType::F32,
                                       dtype == "bf16" ? llamatron::DType::BF16 : llamatron::DType::F32,
                                       false, true, batch * seq, ffn, dim, nullptr, dim, nullptr, dim, nullptr, ffn};
  std::printf("# llamatron CPU, %d OpenMP threads, GEMM kernel %s\n", omp_get_max_threads(),
              llamatron::cpu::gemm_impl_name(probe).c_str());
  std::printf("llamatron_cpu dtype=%s threads=%d tokens_per_s=%.1f step_ms=%.1f\n", dtype.c_str(), threads,
              batch * seq / (median / 1e3), median);
  return 0;
}
