// `llamatron`: the command line. Every user-facing failure is one line on stderr (from rank 0 under
// mpirun) and exit code 1 on every rank.
#include <CLI/CLI.hpp>
#include <omp.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "llamatron/backend.h"
#include "llamatron/batch_ramp.h"
#include "llamatron/checkpoint.h"
#include "llamatron/safetensors.h"
#include "llamatron/tensorboard.h"
#include "llamatron/comm.h"
#include "llamatron/comm_volume.h"
#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/hardware.h"
#include "llamatron/memory.h"
#include "llamatron/planner.h"
#include "llamatron/random.h"
#include "llamatron/prepare.h"
#include "llamatron/trainer.h"
#include "cli/commands.h"
#ifdef LLAMATRON_HAVE_CUDA
#include "cuda/device_info.h"
#endif

namespace llamatron {
namespace {

double mib(double bytes) { return bytes / (1 << 20); }

// The TensorBoard scalars of a metrics record: every value in it but the step, under its JSONL key
// (NaN where the JSONL says null, 1 or 0 for true or false).
std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& record) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [key, v] : record.items()) {
    if (key == "step") continue;
    if (v.is_boolean()) out.emplace_back(key, v.get<bool>() ? 1.0 : 0.0);
    else if (v.is_number()) out.emplace_back(key, v.get<double>());
    else if (v.is_null()) out.emplace_back(key, std::nan(""));
  }
  return out;
}

// Work only rank 0 does (its log files): an Error there is that rank's alone.
template <typename F>
void rank0_only(F&& work) {
  try {
    work();
  } catch (const RankError&) {
    throw;
  } catch (const Error& e) {
    throw RankError(e.what());
  }
}

// An error this rank alone met: the others may be waiting for it, so under mpirun the job is aborted.
[[noreturn]] void exit_on_rank_error(const std::string& what) {
  if (launched_by_mpi() && world().size() > 1) {
    std::fprintf(stderr, "llamatron: error on rank %d: %s\n", world().rank(), what.c_str());
    exit_job(1, false);
  }
  std::fprintf(stderr, "llamatron: error: %s\n", what.c_str());
  exit_job(1, true);
}

// Comma-separated token ids for a model of `vocab` tokens (--tokens).
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v >= vocab)
      throw Error("--tokens: '" + item + "' is not a token id in [0, " + std::to_string(vocab) + ") (model.vocab_size)");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

// The config as resolved (defaults filled, overrides applied, micro-batch count derived), in the
// log and, with a checkpoint.dir, in DIR/run_config.yaml: what this run really trained with.
void log_resolved_config(const RunConfig& c, bool rank0) {
  const std::string yaml = config_to_yaml(c);
  spdlog::info("config (resolved):");
  std::stringstream lines(yaml);
  for (std::string line; std::getline(lines, line);) spdlog::info("  {}", line);
  if (c.checkpoint.dir.empty() || !rank0) return;
  const std::string path = c.checkpoint.dir + "/run_config.yaml", tmp = path + ".tmp";
  try {
    std::error_code ec;
    std::filesystem::create_directories(c.checkpoint.dir, ec);
    write_file_durably(tmp, yaml);
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error("cannot write " + path + ": " + ec.message());
  } catch (const Error& e) {
    throw RankError(std::string(e.what()) + ": check that checkpoint.dir (" + c.checkpoint.dir + ") is a writable directory with free space");
  }
  spdlog::info("config saved to {}", path);
}

// After the first step (the buffers are all made): what this rank holds, by category, and what
// recomputation saves against keeping every activation (the planner's figure for recompute none).
void log_memory(const RunConfig& c, const ProcessGrid& grid, Device device) {
  const MemoryCounts m = memory_counts(device);
  std::string line;
  for (int i = 0; i < kMemCategories; ++i)
    if (m.peak[i] > 0) line += fmt::format("{}{} {:.1f}", line.empty() ? "" : " | ", mem_category_name(static_cast<MemCategory>(i)), mib(m.peak[i]));
  spdlog::info("memory (rank 0, MiB, peak in step 1): {} | total {:.1f}", line, mib(m.total_peak));
  if (c.train.recompute == "none") return;
  RunConfig keep_all = c;
  keep_all.train.recompute = "none";
  const MemoryPlan with = plan_memory(c, grid.pp_rank(), grid.tp_rank()), without = plan_memory(keep_all, grid.pp_rank(), grid.tp_rank());
  spdlog::info("recompute {}: activations {:.1f} MiB instead of {:.1f} MiB, saves {:.1f} MiB per rank ({:.0f}% of the total)",
               c.train.recompute, mib(with.activations + with.workspace), mib(without.activations + without.workspace),
               mib(without.total() - with.total()), 100 * (1 - with.total() / without.total()));
}

// The CUDA backend this binary links (registered while it lives), or an Error naming `what` and why not.
std::unique_ptr<DeviceBackend> cuda_backend_or_error(const std::string& what) {
  std::string why;
  std::unique_ptr<DeviceBackend> cuda = make_linked_cuda_backend(&why);
  if (!cuda) throw Error(what + ", but " + why);
  return cuda;
}

int cmd_train(const std::string& config_path, const std::vector<std::string>& overrides) {
  install_stop_signals();  // before any thread starts
  const RunConfig cfg = load_config(config_path, overrides);
  std::unique_ptr<DeviceBackend> cuda;  // registered for Device::CUDA while it lives
  if (cfg.train.device == "cuda") {
    cuda = cuda_backend_or_error("train.device=cuda");
    cuda->set_deterministic(cfg.train.deterministic);
  }
  if (launched_by_mpi() && world().rank() != 0) spdlog::set_level(spdlog::level::off);  // rank 0 speaks for the job
  stop_signals_speak(!launched_by_mpi() || world().rank() == 0);
  Trainer trainer(cfg, world());
  const ProcessGrid& grid = trainer.grid();
  if (!trainer.resumed_from().empty())
    spdlog::info("resumed from {} at step {} (data position {})", trainer.resumed_from(), trainer.progress().step,
                 trainer.progress().data_position);
  log_resolved_config(trainer.config(), grid.rank() == 0);
  spdlog::info("model: {} | precision {} | device {} | {} thread(s) | recompute {}", describe(cfg.model), cfg.train.precision,
               cfg.train.device, omp_get_max_threads(), cfg.train.recompute);
  spdlog::info("layout: {} process(es) = tensor_parallel {}{} x pipeline_parallel {}{}{} x data_parallel {} | optimizer state "
               "{:.1f} MiB per rank (fp32 master, m, v of a 1/{} ZeRO-1 shard)",
               grid.world().size(), grid.tp(), cfg.parallel.sequence_parallel && grid.tp() > 1 ? " (sequence parallel)" : "", grid.pp(),
               cfg.parallel.virtual_pipeline > 1 ? fmt::format(" ({} chunks each, interleaved 1F1B)", cfg.parallel.virtual_pipeline) : "",
               grid.cp() > 1 ? fmt::format(" x context_parallel {} (ring attention)", grid.cp()) : "", grid.dp(),
               12.0 * static_cast<double>(trainer.optimizer().shard().size()) / (1 << 20), grid.dp() * grid.cp());
  spdlog::info("placement: {}", describe_placement(trainer.hosts(), grid.tp(), grid.pp(), grid.dp() * grid.cp()));
  if (const std::string spread = tp_spread_problem(trainer.hosts(), grid.tp(), grid.pp(), grid.dp() * grid.cp()); !spread.empty())
    spdlog::warn("warning: {}; parallel.require_tp_in_node=true makes this an error", spread);
  spdlog::info("data: {}", trainer.data().describe());
  if (trainer.validation()) spdlog::info("validation: {}", trainer.validation()->describe());
  if (const DocumentRules& d = trainer.model().documents(); d.any())
    spdlog::info("documents: eod id {}{}{}{}", d.eod_id, d.reset_attention_mask ? ", attention within documents" : "",
                 d.reset_position_ids ? ", positions restart after each eod" : "", d.eod_mask_loss ? ", eod targets not counted" : "");
  auto* markov = dynamic_cast<MarkovSource*>(&trainer.data());
  const double floor = markov ? markov->entropy_floor(cfg.train.seq_length) : 0.0;
  const Device device = cfg.train.device == "cuda" ? Device::CUDA : Device::CPU;
  if (markov) spdlog::info("data: entropy floor {:.4f} nats (the best loss any model can reach)", floor);
  const TrainConfig& t = trainer.config().train;  // resolved: the micro-batch count may follow from global_batch_size
  spdlog::info("batch: {} x {} tokens x {} micro-batch(es) x {} data-parallel rank(s) = {} tokens per step", t.micro_batch_size,
               t.seq_length, t.grad_accum_steps, grid.dp(), t.micro_batch_size * t.seq_length * t.grad_accum_steps * grid.dp());
  if (const BatchRamp& ramp = trainer.batch_ramp(); ramp.on())
    spdlog::info("batch ramp-up: {}: micro-batches per step {} -> {}; the LR schedule counts steps", ramp.describe(),
                 ramp.first_size() / (t.micro_batch_size * grid.dp()), t.grad_accum_steps);
  // MFU (FACTS.md): model FLOPs per token 6 N + 12 L C T over the device's peak.
  const double flops_per_token = 6.0 * static_cast<double>(cfg.model.num_params()) +
                                 12.0 * cfg.model.n_layers * cfg.model.dim * cfg.train.seq_length;
  const double peak = cfg.train.device == "cuda" ? hardware_peak(backend_for(Device::CUDA).device_name()).bf16_tflops
                                                 : cfg.logging.cpu_peak_tflops;
  const int devices = grid.world().size();
  StepStats last;
  std::unique_ptr<CheckedFile> metrics;  // rank 0's: its errors are RankErrors
  if (!cfg.logging.metrics_file.empty() && grid.rank() == 0) rank0_only([&] {
    metrics = std::make_unique<CheckedFile>(cfg.logging.metrics_file, CheckedFile::Append, "logging.metrics_file");
  });
  const bool tty = isatty(fileno(stderr)) != 0;
  ProgressBar bar(trainer.progress().step, cfg.train.steps,
                  grid.rank() == 0 && (cfg.logging.progress == "always" || (cfg.logging.progress == "auto" && tty)));
  reset_memory_peaks(device);  // set-up transients (weights drawn on the host, a loaded checkpoint) are not the step's
  const int64_t first_step = trainer.progress().step;
  std::unique_ptr<TensorBoardWriter> tensorboard;  // rank 0's, as the metrics file
  if (!cfg.logging.tensorboard_dir.empty() && grid.rank() == 0)
    rank0_only([&] { tensorboard = std::make_unique<TensorBoardWriter>(cfg.logging.tensorboard_dir); });
  trainer.run([&](const StepStats& s) {
    last = s;
    const double tflops = s.tokens_per_s / devices * flops_per_token / 1e12;
    if (metrics || tensorboard) {
      const MemoryCounts mem = memory_counts(device);
      nlohmann::json j = {{"step", s.step}, {"tokens", s.tokens_seen}, {"epoch", s.epoch}, {"loss", s.loss},
                          {"perplexity", std::exp(s.loss)}, {"lr", s.lr}, {"grad_norm", s.grad_norm},
                          {"tokens_per_s", s.tokens_per_s}, {"step_ms", s.step_ms}, {"exposed_comm_ms", s.exposed_comm_ms},
                          {"mem_mib", mib(mem.total)}, {"mem_peak_mib", mib(mem.total_peak)},
                          {"global_batch_size", s.global_batch_size}, {"skipped", s.skipped},
                          {"bad_steps", s.bad_steps}, {"skipped_steps", s.skipped_steps}};
      if (peak > 0) j["mfu"] = tflops / peak;
      if (s.valid_loss >= 0) j["valid_loss"] = s.valid_loss, j["valid_perplexity"] = std::exp(s.valid_loss);
      if (cfg.logging.gns) j["gns"] = s.gns, j["gns_rank_grad_sq"] = s.gns_rank_grad_sq;  // NaN: null in the JSONL
      if (metrics) rank0_only([&] { metrics->write(j.dump() + "\n"); });
      if (tensorboard) rank0_only([&] { tensorboard->write_scalars(s.step, tensorboard_scalars(j)); });
    }
    if (s.step % cfg.logging.log_every == 0 || s.step == cfg.train.steps || s.step == 1) {
      spdlog::info("step {:>5}/{} | epoch {} | tokens {:>10} | batch {} | lr {:.3e} | loss {:.4f} | ppl {:.2f} | grad norm {:.3f} | "
                   "{:.0f} tok/s ({:.0f}/device) | {:.3f} TFLOP/s/device | MFU {} | {:.1f} ms (exposed comm {:.1f} ms) | mem {:.1f}/{:.1f} MiB | "
                   "skipped {} (NaN/Inf {}){}",
                   s.step, cfg.train.steps, s.epoch, s.tokens_seen, s.global_batch_size, s.lr, s.loss, std::exp(s.loss), s.grad_norm, s.tokens_per_s,
                   s.tokens_per_s / devices, tflops, peak > 0 ? fmt::format("{:.1f}%", 100 * tflops / peak) : std::string("n/a"),
                   s.step_ms, s.exposed_comm_ms, mib(memory_counts(device).total), mib(memory_counts(device).total_peak), s.skipped_steps,
                   s.bad_steps, cfg.logging.gns ? fmt::format(" | gns {:.4g}", s.gns) : std::string());
    }
    if (s.step == first_step + 1) log_memory(trainer.config(), grid, device);
    if (!s.anomaly.empty())
      spdlog::warn("step {}: {}{} ({} NaN/Inf step(s), {} skipped so far)", s.step, s.anomaly, s.skipped ? ": update skipped" : "",
                   s.bad_steps, s.skipped_steps);
    if (cfg.logging.log_comm) {  // rank 0's bytes per group this step, and what the layout should send
      RunConfig now = trainer.config();  // this step's micro-batches (fewer during the batch ramp-up)
      now.train.grad_accum_steps = s.global_batch_size / (now.train.micro_batch_size * grid.dp());
      const auto want = step_comm_bytes(now, {grid.tp(), grid.pp(), grid.dp(), grid.pp_rank(),
                                                           trainer.optimizer().shard().size(), grid.cp()});
      std::string line;
      const CommStats& stats = grid.comm_stats();
      for (const auto& [key, bytes] : stats.bytes) {
        const double inter = stats.inter_host.count(key) ? stats.inter_host.at(key) : 0.0;
        line += fmt::format(" | {} {:.3f} MB (analytic {:.3f}; intra-host {:.3f}, inter-host {:.3f})", key, bytes / 1e6,
                            want.count(key) ? want.at(key) / 1e6 : 0.0, (bytes - inter) / 1e6, inter / 1e6);
      }
      spdlog::info("comm  {:>5}/{}{}", s.step, cfg.train.steps, line.empty() ? " | none (one process)" : line);
      grid.comm_stats().reset();
    }
    if (!s.stragglers.empty())
      spdlog::warn("warning: straggler(s) in steps up to {}: {}; train.straggler_factor is {:g}", s.step, s.stragglers,
                   cfg.train.straggler_factor);
    if (s.valid_loss >= 0)
      spdlog::info("valid  {:>5}/{} | loss {:.4f} | perplexity {:.2f}", s.step, cfg.train.steps, s.valid_loss, std::exp(s.valid_loss));
    bar.draw(s.step, s.loss, s.tokens_per_s);
  });
  bar.clear();
  if (metrics) rank0_only([&] { metrics->close(true); });
  if (tensorboard) rank0_only([&] { tensorboard->close(); });
  if (trainer.stopped_by_signal())
    spdlog::info("stopped by signal {} after step {}{}", trainer.stopped_by_signal(), trainer.progress().step,
                 cfg.checkpoint.dir.empty() ? " (no checkpoint.dir: nothing saved)" : ", checkpoint saved");
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

// A checkpoint directory, or a checkpoint.dir (its latest).
std::string checkpoint_at(const std::string& path) {
  CheckpointConfig c;
  c.resume = path;
  return find_checkpoint(c);
}

// The resolved config a checkpoint was saved with, on one process, loading that checkpoint; on the
// CUDA backend (bf16) when device is "cuda".
// extra: `--set` overrides of the document switches (data.eod_id, data.reset_attention_mask,
// data.reset_position_ids, data.eod_mask_loss); the default is how the model was trained.
RunConfig config_of_checkpoint(const std::string& ckpt, const std::string& device = "cpu", const std::vector<std::string>& extra = {}) {
  const std::string dir = checkpoint_at(ckpt);
  const std::string path = (std::filesystem::path(dir) / "config.yaml").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error("checkpoint " + dir + " has no config.yaml: not a llamatron checkpoint");
  std::vector<std::string> sets = {"parallel.tensor_parallel=1", "parallel.pipeline_parallel=1", "parallel.data_parallel=1",
                                   "parallel.context_parallel=1",
                                          "parallel.pipeline_layers=", "train.global_batch_size=0", "checkpoint.dir=", "checkpoint.init_from=",
                                          "checkpoint.resume=" + dir, "data.source=synthetic", "data.paths=", "data.weights=",
                                          "data.valid_paths=", "data.valid_fraction=0", "train.eval_every=0", "train.device=" + device,
                                          "train.rampup_batch_size=", "logging.gns=false", "logging.tensorboard_dir=",
                                          // one sequence on this machine, whatever the run that trained it used
                                          "train.threads=0", "train.micro_batch_size=1", "train.grad_accum_steps=1", "train.eval_batches=1"};
  if (device == "cuda") sets.push_back("train.precision=bf16");  // the CUDA backend computes in bf16 (the fp32 master, rounded)
  for (const std::string& e : extra) {
    const std::string key = e.substr(0, e.find('='));
    if (key != "data.eod_id" && key != "data.reset_attention_mask" && key != "data.reset_position_ids" && key != "data.eod_mask_loss")
      throw Error("--set " + e + ": only the document switches can be set here (data.eod_id, data.reset_attention_mask, "
                  "data.reset_position_ids, data.eod_mask_loss); the rest is the checkpoint's");
    sets.push_back(e);
  }
  return parse_config(read_small_file(path, "checkpoint config", uint64_t{16} << 20), sets);
}

int cmd_logits(const std::string& ckpt, const std::string& tokens_text, const std::string& out, const std::vector<std::string>& sets) {
  Trainer t(config_of_checkpoint(ckpt, "cpu", sets));
  std::vector<int32_t> tokens = parse_token_ids(tokens_text, t.config().model.vocab_size);
  if (tokens.empty()) throw Error("--tokens is empty: give comma-separated token ids");
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T > t.config().model.max_seq_len)
    throw Error("--tokens has " + std::to_string(T) + " ids, more than the model's max_seq_len " + std::to_string(t.config().model.max_seq_len));
  tokens.push_back(0);  // a target for the last position; the logits do not depend on it
  t.model().keep_logits(true);
  t.model().forward_loss(tokens.data(), 1, T);
  const Tensor& logits = t.model().last_logits();
  Tensor f32 = Tensor::empty(logits.shape(), DType::F32);
  f32.copy_from(logits);
  write_safetensors(out, {{"logits", f32}});
  std::printf("logits [%lld, %lld] -> %s\n", static_cast<long long>(f32.dim(0)), static_cast<long long>(f32.dim(1)), out.c_str());
  return 0;
}

// Sampling from a checkpoint's model: greedy (temperature 0), or softmax(logits / temperature)
// over the top_k tokens. With a KV cache by default (the prompts once, then one token per step,
// all prompts together); --no-cache re-runs each whole prefix per token (the reference path).
struct GenerateOptions {
  std::vector<std::string> prompts, tokens;  // several: a batch, one output line each
  int64_t max_new = 64, top_k = 0, eos = -1;  // eos -1: the byte-level EOS for --prompt, none for --tokens
  double temperature = 0.8;
  uint64_t seed = 1;
  bool no_cache = false, timing = false;
  std::string device = "cpu";  // cpu | cuda (the GPU, or the emulated device in llamatron-emu)
  std::vector<std::string> sets;  // document switches (config_of_checkpoint)
};

// The next token from one position's logits [V]. Each prompt has its own Rng (seed + its index),
// so the cached and the recomputing paths draw the same numbers.
int32_t pick_token(const float* logits, int64_t V, const GenerateOptions& o, Rng& rng) {
  std::vector<std::pair<float, int32_t>> cand;
  for (int32_t v = 0; v < V; ++v) cand.push_back({logits[v], v});
  std::sort(cand.begin(), cand.end(), std::greater<>());
  if (o.temperature <= 0) return cand[0].second;
  const size_t k = o.top_k > 0 ? std::min<size_t>(o.top_k, cand.size()) : cand.size();
  std::vector<double> p(k);
  double total = 0;
  for (size_t i = 0; i < k; ++i) total += p[i] = std::exp((cand[i].first - cand[0].first) / o.temperature);
  double u = rng.uniform() * total;
  size_t i = 0;
  while (i + 1 < k && u >= p[i]) u -= p[i++];
  return cand[i].second;
}

int cmd_generate(const std::string& ckpt, const GenerateOptions& o) {
  std::unique_ptr<DeviceBackend> cuda;  // registered for Device::CUDA while it lives
  if (o.device == "cuda") cuda = cuda_backend_or_error("generate --device cuda");
  Trainer t(config_of_checkpoint(ckpt, o.device, o.sets));
  const ModelConfig& m = t.config().model;
  const bool bytes = o.tokens.empty();  // the built-in byte-level tokenizer (ids 0-255, EOS 256)
  std::vector<std::vector<int32_t>> prompts;
  if (bytes) {
    if (m.vocab_size < kByteVocab) throw Error("--prompt uses the byte-level tokenizer (vocab_size >= 257); give --tokens for this model");
    for (const std::string& text : o.prompts) prompts.emplace_back(text.begin(), text.end());
    for (auto& ids : prompts)
      for (int32_t& id : ids) id = static_cast<unsigned char>(id);
  } else {
    if (!o.prompts.empty()) throw Error("give --prompt (byte-level text) or --tokens (ids), not both");
    for (const std::string& list : o.tokens) prompts.push_back(parse_token_ids(list, m.vocab_size));
  }
  if (prompts.empty()) throw Error("give a non-empty --prompt (byte-level models) or --tokens");
  for (const auto& ids : prompts) {
    if (ids.empty()) throw Error("give a non-empty --prompt (byte-level models) or --tokens");
    if (static_cast<int64_t>(ids.size()) > m.max_seq_len)
      throw Error("a prompt has " + std::to_string(ids.size()) + " tokens, more than the model's max_seq_len " + std::to_string(m.max_seq_len));
  }
  if (o.eos >= m.vocab_size) throw Error("--eos " + std::to_string(o.eos) + " is not a token id of this model (vocab_size " + std::to_string(m.vocab_size) + ")");
  const int64_t eos = o.eos >= 0 ? o.eos : bytes ? kByteEos : -1, V = m.vocab_size, P = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<int32_t>> out(P);
  std::vector<Rng> rngs;
  for (int64_t i = 0; i < P; ++i) rngs.emplace_back(o.seed + static_cast<uint64_t>(i));
  // A sequence goes on while it has budget and room: (prompt + generated) < max_seq_len.
  const auto more = [&](int64_t i) {
    return static_cast<int64_t>(out[i].size()) < o.max_new && static_cast<int64_t>(prompts[i].size() + out[i].size()) < m.max_seq_len;
  };
  const auto t0 = std::chrono::steady_clock::now();
  LlamaModel& model = t.model();
  if (o.no_cache) {
    model.keep_logits(true);
    for (int64_t i = 0; i < P; ++i)
      while (more(i)) {
        std::vector<int32_t> window = prompts[i];
        window.insert(window.end(), out[i].begin(), out[i].end());
        const auto T = static_cast<int64_t>(window.size());
        window.push_back(0);  // a target for the last position; the logits do not depend on it
        model.forward_loss(window.data(), 1, T);
        Tensor logits = Tensor::empty(model.last_logits().shape(), DType::F32);
        logits.copy_from(model.last_logits());
        const int32_t next = pick_token(logits.data<float>() + (T - 1) * logits.dim(1), V, o, rngs[i]);
        if (next == eos) break;
        out[i].push_back(next);
      }
  } else {
    int64_t longest = 0;
    for (const auto& ids : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()));
    KvCache cache = model.make_kv_cache(P, std::min(m.max_seq_len, longest + o.max_new));
    std::vector<int64_t> rows;
    std::vector<int32_t> next;
    for (int64_t i = 0; i < P; ++i)
      if (more(i)) {
        const std::vector<float> logits = model.prefill(cache, i, prompts[i].data(), static_cast<int64_t>(prompts[i].size()));
        rows.push_back(i), next.push_back(pick_token(logits.data(), V, o, rngs[i]));
      }
    while (!rows.empty()) {  // rows: the sequences whose next token is picked but not yet run
      std::vector<int64_t> go;
      std::vector<int32_t> feed;
      for (size_t r = 0; r < rows.size(); ++r) {
        const int64_t i = rows[r];
        if (next[r] == eos) continue;
        out[i].push_back(next[r]);
        if (more(i)) go.push_back(i), feed.push_back(next[r]);
      }
      rows = go;
      if (rows.empty()) break;
      const std::vector<float> logits = model.decode(cache, rows, feed);
      next.resize(rows.size());
      for (size_t r = 0; r < rows.size(); ++r) next[r] = pick_token(logits.data() + r * V, V, o, rngs[rows[r]]);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t made = 0;
  for (int64_t i = 0; i < P; ++i) {
    made += static_cast<int64_t>(out[i].size());
    if (bytes) {
      std::string text(o.prompts[i]);
      for (int32_t g : out[i]) text.push_back(static_cast<char>(g < 256 ? g : '?'));
      std::printf("%s\n", text.c_str());
    } else {
      for (size_t j = 0; j < out[i].size(); ++j) std::printf("%s%d", j ? "," : "", out[i][j]);
      std::printf("\n");
    }
  }
  if (o.timing)
    std::fprintf(stderr, "generate: %lld prompt(s), %lld new tokens in %.3f s: %.1f tokens/s (%s, %s)\n", static_cast<long long>(P),
                 static_cast<long long>(made), seconds, static_cast<double>(made) / seconds,
                 o.no_cache ? "recomputing the prefix" : "KV cache", o.device.c_str());
  return 0;
}

int cmd_export_hf(const std::string& ckpt, const std::string& out, const std::string& dtype) {
  const std::string dir = checkpoint_at(ckpt);
  export_hf(dir, out, dtype == "bf16" ? DType::BF16 : DType::F32);
  std::printf("exported %s -> %s (config.json, model.safetensors, %s)\n", dir.c_str(), out.c_str(), dtype.c_str());
  return 0;
}

// A step-0 checkpoint (one process, fp32 master, fresh optimizer) of a Hugging Face LLaMA.
int cmd_import_hf(const std::string& hf_dir, const std::string& out) {
  RunConfig c;
  c.model = hf_model_config(hf_dir);
  c.train.seq_length = std::min<int64_t>(c.train.seq_length, c.model.max_seq_len);
  c.train.precision = "fp32";
  c.data.markov_branching = std::min<int64_t>(c.data.markov_branching, c.model.vocab_size);
  c.checkpoint.dir = out, c.checkpoint.resume = "never", c.checkpoint.init_from = "hf:" + hf_dir;
  c.validate();
  Trainer t(c);
  save_checkpoint(t);
  std::printf("imported %s -> %s/%s\n", hf_dir.c_str(), out.c_str(), "step_00000000");
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
  llamatron::PlanOptions plan_opts;
  std::string plan_gpu = "h100-80gb";
  int plan_top = 15;
  CLI::App* plan = app.add_subcommand("plan", "rank the layouts (tp, pp, cp, dp, micro-batch, recompute) of a config on N GPUs: memory per "
                                              "GPU, pipeline bubble, step time, MFU, tokens/day, days and cost (estimates; no GPU needed)");
  plan->add_option("config", config_path, "YAML config file (model, sequence length, global batch)")->required();
  plan->add_option("--set", overrides, "override a config key: section.key=value (repeatable)");
  plan->add_option("--gpus", plan_opts.gpus, "number of GPUs (default 8)");
  plan->add_option("--gpu", plan_gpu, "GPU type: " + llamatron::gpu_names() + " (default h100-80gb)");
  plan->add_option("--top", plan_top, "how many layouts to print (default 15)");
  plan->add_option("--tokens", plan_opts.tokens, "token budget for days and cost (default: 20 per parameter, Chinchilla)");
  plan->add_option("--usd-per-gpu-hour", plan_opts.gpu.usd_per_gpu_hour, "price per GPU-hour (default: the GPU table's)");
  plan->add_option("--gemm-efficiency", plan_opts.gemm_efficiency, "assumed share of peak FLOP/s the GEMMs reach (default 0.5)");
  llamatron::PlanHardware plan_hw;
  plan->add_option("--tflops", plan_hw.tflops, "peak TFLOP/s instead of the GPU's (e.g. a CPU's measured rate, with --gemm-efficiency 1)");
  plan->add_option("--network-gbps", plan_hw.network_gbs, "inter-node bandwidth per GPU in GB/s instead of the GPU table's");
  plan->add_option("--gpus-per-node", plan_hw.per_node, "GPUs (ranks) per node instead of the GPU table's 8");
  plan->add_option("--layout", plan_hw.layout, "estimate this layout only: TP,PP,DP or TP,PP,DP,CP (at the config's micro-batch and recompute)")->delimiter(',');
  int resize_from = 0;
  std::vector<std::string> resize_hosts;
  CLI::App* resize = app.add_subcommand("resize", "the layout a run continues with on fewer hosts (scripts/launch.sh --elastic): same "
                                                  "TP and PP, TP inside hosts, fewer DP ranks, the same global batch");
  resize->add_option("config", config_path, "the run's YAML config")->required();
  resize->add_option("--set", overrides, "the run's config overrides (repeatable)");
  resize->add_option("--from-ranks", resize_from, "the ranks the run trained on")->required();
  resize->add_option("--hosts", resize_hosts, "the hosts left, HOST:SLOTS (comma-separated)")->required()->delimiter(',');
  CLI::App* info = app.add_subcommand("info", "print the backends and devices this build sees");
  std::string ckpt, out_dir, tokens_text, hf_dtype = "bf16";
  CLI::App* export_hf = app.add_subcommand("export-hf", "a checkpoint as a Hugging Face LLaMA (config.json + model.safetensors)");
  export_hf->add_option("checkpoint", ckpt, "a checkpoint directory, or a checkpoint.dir (its latest)")->required();
  export_hf->add_option("out", out_dir, "output directory")->required();
  export_hf->add_option("--dtype", hf_dtype, "bf16 or fp32 (default bf16)")->check(CLI::IsMember({"bf16", "fp32"}));
  CLI::App* import_hf = app.add_subcommand("import-hf", "a Hugging Face LLaMA as a step-0 checkpoint (or use checkpoint.init_from)");
  import_hf->add_option("hf_dir", ckpt, "a Hugging Face model directory")->required();
  import_hf->add_option("out", out_dir, "checkpoint.dir to write step_00000000 into")->required();
  CLI::App* logits = app.add_subcommand("logits", "the logits of a checkpoint's model on given tokens (fp32 safetensors)");
  logits->add_option("checkpoint", ckpt, "a checkpoint directory, or a checkpoint.dir (its latest)")->required();
  logits->add_option("--tokens", tokens_text, "comma-separated token ids")->required();
  logits->add_option("--out", out_dir, "output .safetensors file (tensor \"logits\" [T, vocab])")->required();
  logits->add_option("--set", overrides, "a document switch, e.g. data.reset_attention_mask=true (default: as trained)");
  llamatron::GenerateOptions gen;
  CLI::App* generate = app.add_subcommand("generate", "sample from a checkpoint's model (greedy, temperature, top-k)");
  generate->add_option("checkpoint", ckpt, "a checkpoint directory, or a checkpoint.dir (its latest)")->required();
  generate->add_option("--prompt", gen.prompts, "text (byte-level models: vocab_size >= 257); repeat it for a batch, one line each");
  generate->add_option("--tokens", gen.tokens, "comma-separated prompt token ids (any tokenizer); prints ids, one line per "
                                               "--tokens (tools/generate_hf.py does this with a Hugging Face tokenizer)");
  generate->add_option("--max-new", gen.max_new, "tokens to generate (default 64)");
  generate->add_option("--temperature", gen.temperature, "0: greedy (default 0.8)");
  generate->add_option("--top-k", gen.top_k, "sample among the k most likely (default 0: all)");
  generate->add_option("--eos", gen.eos, "stop a sequence at this token id (default: 256 for --prompt, none for --tokens)");
  generate->add_flag("--no-cache", gen.no_cache, "re-run the whole prefix for every token instead of keeping a KV cache");
  generate->add_flag("--time", gen.timing, "print the generation speed (tokens/s) to stderr");
  generate->add_option("--device", gen.device, "cpu (default) or cuda (the GPU; the emulated device in llamatron-emu)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  generate->add_option("--seed", gen.seed, "sampling seed (default 1)");
  generate->add_option("--set", gen.sets, "a document switch, e.g. data.reset_attention_mask=true (default: as trained)");
  CLI::App* data = app.add_subcommand("data", "raw text -> filter -> dedup -> token shards; inspect token data");
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
  llamatron::FilterRun filter_run;
  llamatron::DedupRun dedup_run;
  CLI::App* filter = nullptr;
  CLI::App* dedup = nullptr;
  llamatron::add_data_filter(*data, filter_run, filter);
  llamatron::add_data_dedup(*data, dedup_run, dedup);
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
    if (resize->parsed()) return llamatron::cmd_resize(config_path, overrides, resize_from, resize_hosts);
    if (plan->parsed()) return llamatron::cmd_plan(config_path, overrides, plan_opts, plan_gpu, plan_top, plan_hw);
    if (inspect->parsed()) return llamatron::cmd_data_inspect(inspect_path);
    if (filter->parsed()) return llamatron::cmd_data_filter(filter_run);
    if (dedup->parsed()) return llamatron::cmd_data_dedup(dedup_run);
    if (export_hf->parsed()) return llamatron::cmd_export_hf(ckpt, out_dir, hf_dtype);
    if (import_hf->parsed()) return llamatron::cmd_import_hf(ckpt, out_dir);
    if (logits->parsed()) return llamatron::cmd_logits(ckpt, tokens_text, out_dir, overrides);
    if (generate->parsed()) return llamatron::cmd_generate(ckpt, gen);
    if (prepare->parsed()) {
      prep.llmc = prep_format != "megatron";
      prep.megatron = prep_format != "llmc";
      return llamatron::cmd_data_prepare(prep);
    }
  } catch (const llamatron::RankError& e) {
    llamatron::exit_on_rank_error(e.what());
  } catch (const std::filesystem::filesystem_error& e) {  // a path the user gave (an output directory under a file, ...)
    llamatron::exit_on_rank_error(std::string(e.what()) + ": check the path");
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
