// `llamatron`: the command line. Every user-facing failure is one line on stderr (from rank 0 under
// mpirun) and exit code 1 on every rank.
#include <CLI/CLI.hpp>
#include <omp.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "llamatron/backend.h"
#include "llamatron/comm.h"
#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/prepare.h"
#include "llamatron/trainer.h"
#ifdef LLAMATRON_HAVE_CUDA
#include "cuda/device_info.h"
#endif

namespace llamatron {
namespace {

int cmd_train(const std::string& config_path, const std::vector<std::string>& overrides) {
  const RunConfig cfg = load_config(config_path, overrides);
  std::unique_ptr<DeviceBackend> cuda;  // registered for Device::CUDA while it lives
  if (cfg.train.device == "cuda") {
    std::string why;
    cuda = make_linked_cuda_backend(&why);
    if (!cuda) throw Error("train.device=cuda, but " + why);
    cuda->set_deterministic(cfg.train.deterministic);
  }
  Trainer trainer(cfg, world());
  const ProcessGrid& grid = trainer.grid();
  if (grid.rank() != 0) spdlog::set_level(spdlog::level::off);  // rank 0 speaks for the job
  spdlog::info("model: {} | precision {} | device {} | {} thread(s)", describe(cfg.model), cfg.train.precision,
               cfg.train.device, omp_get_max_threads());
  spdlog::info("layout: {} process(es) = tensor_parallel {} x pipeline_parallel {} x data_parallel {} | optimizer state "
               "{:.1f} MiB per rank (fp32 master, m, v of a 1/{} ZeRO-1 shard)",
               grid.world().size(), grid.tp(), grid.pp(), grid.dp(),
               12.0 * static_cast<double>(trainer.optimizer().shard().size()) / (1 << 20), grid.dp());
  spdlog::info("data: {}", trainer.data().describe());
  if (trainer.validation()) spdlog::info("validation: {}", trainer.validation()->describe());
  auto* markov = dynamic_cast<MarkovSource*>(&trainer.data());
  const double floor = markov ? markov->entropy_floor(cfg.train.seq_len) : 0.0;
  if (markov) spdlog::info("data: entropy floor {:.4f} nats (the best loss any model can reach)", floor);
  const TrainConfig& t = trainer.config().train;  // resolved: the micro-batch count may follow from global_batch_size
  spdlog::info("batch: {} x {} tokens x {} micro-batch(es) x {} data-parallel rank(s) = {} tokens per step", t.batch_size,
               t.seq_len, t.grad_accum_steps, grid.dp(), t.batch_size * t.seq_len * t.grad_accum_steps * grid.dp());
  StepStats last;
  trainer.run([&](const StepStats& s) {
    last = s;
    if (s.step % cfg.train.log_every == 0 || s.step == cfg.train.steps || s.step == 1)
      spdlog::info("step {:>5}/{} | epoch {} | tokens {:>10} | lr {:.3e} | loss {:.4f} | grad norm {:.3f} | {:>8.0f} tok/s | {:>8.1f} ms",
                   s.step, cfg.train.steps, s.epoch, s.tokens_seen, s.lr, s.loss, s.grad_norm, s.tokens_per_s, s.step_ms);
    if (s.valid_loss >= 0)
      spdlog::info("valid  {:>5}/{} | loss {:.4f} | perplexity {:.2f}", s.step, cfg.train.steps, s.valid_loss, std::exp(s.valid_loss));
  });
  if (markov && last.step > 0)
    spdlog::info("done: loss {:.4f} is {:.4f} nats above the entropy floor {:.4f}", last.loss, last.loss - floor, floor);
  return 0;
}

int cmd_data_inspect(const std::string& path) {
  std::fputs(inspect_data(path).c_str(), stdout);
  return 0;
}

// A progress bar on a terminal, one line per file otherwise.
int cmd_data_prepare(const PrepareOptions& opts) {
  const bool tty = isatty(fileno(stderr));
  const PrepareResult r = prepare_data(opts, [&](int done, int total, int64_t tokens) {
    if (tty) {
      const int width = 30, filled = width * done / total;
      std::fprintf(stderr, "\r[%s%s] %d/%d files, %lld tokens", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), done, total, static_cast<long long>(tokens));
      if (done == total) std::fputc('\n', stderr);
    } else {
      std::printf("prepared %d/%d files, %lld tokens\n", done, total, static_cast<long long>(tokens));
    }
  });
  std::printf("%lld documents, %lld tokens (byte-level: vocab_size >= %lld) -> %zu file(s) in %s\n",
              static_cast<long long>(r.documents), static_cast<long long>(r.tokens), static_cast<long long>(kByteVocab),
              r.files.size(), opts.out_dir.c_str());
  return 0;
}

int cmd_info() {
  std::printf("llamatron: CPU backend with %d OpenMP thread(s)\n", omp_get_max_threads());
#ifdef LLAMATRON_HAVE_CUDA
  std::printf("cuda: %s\n", cuda::device_summary().c_str());
#else
  std::printf("cuda: not built (configure with -DLLAMATRON_CUDA=ON)\n");
#endif
  return 0;
}

}  // namespace
}  // namespace llamatron

int main(int argc, char** argv) {
  CLI::App app{"llamatron: LLaMA pre-training in C++ and CUDA"};
  app.require_subcommand(1);
  std::string config_path;
  std::vector<std::string> overrides;
  CLI::App* train = app.add_subcommand("train", "train a model from a YAML config");
  train->add_option("config", config_path, "YAML config file")->required();
  train->add_option("--set", overrides, "override a config key: section.key=value (repeatable)");
  CLI::App* info = app.add_subcommand("info", "print the backends and devices this build sees");
  CLI::App* data = app.add_subcommand("data", "inspect or prepare token data");
  data->require_subcommand(1);
  std::string inspect_path;
  CLI::App* inspect = data->add_subcommand("inspect", "format, dtype, token and document counts, first tokens");
  inspect->add_option("path", inspect_path, "an llm.c shard, or a Megatron dataset (prefix, .bin or .idx)")->required();
  llamatron::PrepareOptions prep;
  std::string prep_format = "llmc";
  CLI::App* prepare = data->add_subcommand("prepare", "text or JSONL (a \"text\" field) -> token shards, byte-level tokenizer "
                                                      "(Hugging Face tokenizers: tools/prepare_hf.py)");
  prepare->add_option("inputs", prep.inputs, "input files (.txt: one document; .jsonl: one per line)")->required();
  prepare->add_option("--out", prep.out_dir, "output directory")->required();
  prepare->add_option("--name", prep.name, "output file name stem (default data)");
  prepare->add_option("--format", prep_format, "llmc, megatron or both (default llmc)")->check(CLI::IsMember({"llmc", "megatron", "both"}));
  prepare->add_option("--shard-tokens", prep.shard_tokens, "tokens per llm.c shard (default 100M)");
  prepare->add_option("--threads", prep.threads, "files tokenized in parallel (default: all cores)");
  spdlog::set_pattern("[%H:%M:%S] %v");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "llamatron: error: %s (see llamatron --help)\n", e.what());
    return 1;
  }
  try {
    if (train->parsed()) return llamatron::cmd_train(config_path, overrides);
    if (info->parsed()) return llamatron::cmd_info();
    if (inspect->parsed()) return llamatron::cmd_data_inspect(inspect_path);
    if (prepare->parsed()) {
      prep.llmc = prep_format != "megatron";
      prep.megatron = prep_format != "llmc";
      return llamatron::cmd_data_prepare(prep);
    }
  } catch (const llamatron::Error& e) {
    // Configuration and layout errors are found the same way on every rank: rank 0 says it once.
    if (!llamatron::launched_by_mpi() || llamatron::world().rank() == 0) std::fprintf(stderr, "llamatron: error: %s\n", e.what());
    llamatron::exit_job(1, true);
  } catch (const std::exception& e) {
    const int rank = llamatron::launched_by_mpi() ? llamatron::world().rank() : 0;
    std::fprintf(stderr, "llamatron: internal error on rank %d: %s (please report it)\n", rank, e.what());
    llamatron::exit_job(2, false);
  }
  return 0;
}
