// Run configuration: plain structs, filled from YAML and `--set key=value` overrides by one
// table of keys (csrc/train/config.cpp), so an unknown key is always an error, never ignored.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace llamatron {

struct ModelConfig {
  // Bounds that keep every size computed from a config far inside int64 (LLaMA 3 405B: 126 layers).
  static constexpr int64_t kMaxLayers = 65536, kMaxParams = int64_t{1} << 48;
  int64_t vocab_size = 256;
  int64_t dim = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;
  int64_t ffn_dim = 0;  // 0: Meta's rule from multiple_of and ffn_dim_multiplier
  int64_t multiple_of = 256;
  double ffn_dim_multiplier = 1.0;
  int64_t max_seq_len = 256;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;

  int64_t head_dim() const { return dim / n_heads; }
  // Meta's LLaMA rule: 2/3 of 4*dim, times the multiplier, rounded up to multiple_of.
  int64_t resolved_ffn_dim() const;
  void validate() const;  // throws Error naming the broken relation and the fix
  int64_t num_params() const;
  std::optional<int64_t> checked_params() const;  // nullopt when the count does not fit in int64
};

// optimizer: AdamW with global-norm clipping.
struct OptimConfig {
  double lr = 3e-3;                 // peak learning rate
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_embeddings = true;     // norm weights are never decayed
  double max_grad_norm = 1.0;       // 0 disables clipping
};

// schedule: the learning rate over the run (Megatron's names).
struct ScheduleConfig {
  double min_lr = 3e-4;
  int64_t warmup_steps = 10;
  std::string decay_style = "cosine";  // constant | linear | cosine | wsd
  double decay_fraction = 0.2;         // wsd: share of the run spent decaying
};

// logging: what rank 0 prints and writes.
struct LoggingConfig {
  int64_t log_every = 1;
  std::string metrics_file;       // rank 0 appends one JSON object per step (JSONL) here ("": none)
  std::string tensorboard_dir;    // rank 0 writes TensorBoard event files here: the JSONL's scalars ("": none)
  // The gradient noise scale B_simple (noise_scale.h) each step, from each data-parallel rank's
  // gradient and the global one (needs data_parallel >= 2), smoothed by an EMA with this factor.
  bool gns = false;
  double gns_ema = 0.95;
  bool log_comm = false;          // log each step's bytes per group (rank 0), measured and analytic
  double cpu_peak_tflops = 0;     // the CPU's peak, for MFU on the CPU backend (0: MFU n/a)
  std::string progress = "auto";  // auto: a progress bar with ETA on a terminal | always | never (plain lines)
  // A step timeline (Chrome trace / Perfetto JSON) of the steps trace_steps names: one file for all
  // ranks, or one per rank when the path contains {rank} ("": none).
  std::string trace_file;
  std::vector<int64_t> trace_steps = {2};  // 1-based steps to trace
};

struct DataConfig {
  std::string source = "synthetic";  // synthetic | llmc | megatron
  // llmc: shard files (globs allowed); megatron: dataset prefixes (prefix.bin + prefix.idx).
  // Without weights they form one dataset; with weights, entry i is dataset i of a blend.
  std::vector<std::string> paths;
  std::vector<double> weights;       // blend weights, one per paths entry (positive)
  bool shuffle = true;               // a fresh window order each epoch (false: file order, llm.c style)
  std::vector<std::string> valid_paths;  // validation data (same format); else...
  double valid_fraction = 0;         // ...the last windows of each dataset held out, [0, 0.5)
  int64_t markov_order = 1;          // synthetic: order-k Markov chain...
  int64_t markov_branching = 4;      // ...with this many successors per context
  uint64_t markov_seed = 1234;       // the chain itself (the data stream uses train.seed)
  // Packed documents (include/llamatron/documents.h, Megatron's switches): -1 = the id recorded by
  // `llamatron data prepare` (256, its byte-level EOS) or tools/prepare_hf.py beside the data.
  int64_t eod_id = -1;
  bool reset_attention_mask = false;  // attention stays inside each document
  bool reset_position_ids = false;    // RoPE positions restart at 0 after each eod
  bool eod_mask_loss = false;         // the target of an eod input is not counted
};

struct TrainConfig {
  int64_t steps = 100;
  int64_t micro_batch_size = 8;   // sequences per micro-batch per data-parallel rank
  int64_t seq_length = 64;
  int64_t grad_accum_steps = 1;   // micro-batches per optimizer step
  bool grad_accum_given = false;  // set by parse_config when the config names grad_accum_steps (not a key)
  int64_t global_batch_size = 0;  // sequences per step over all DP ranks; when set, grad_accum_steps =
                                  // global_batch_size / (micro_batch_size * data_parallel) (Megatron's rule)
  // [start, increment, ramp_samples]: the global batch grows from start to global_batch_size over the
  // first ramp_samples samples (Megatron's --rampup-batch-size; batch_ramp.h); []: off.
  std::vector<int64_t> rampup_batch_size;
  std::string precision = "bf16"; // bf16 (bf16 params/activations, fp32 master) | fp32 (exact mode)
  uint64_t seed = 0;
  int64_t threads = 0;            // 0: OMP_NUM_THREADS or all cores
  std::string device = "cpu";     // cpu | cuda (the GPU, or the emulated device in llamatron_emu)
  int64_t eval_every = 0;         // validation loss and perplexity every N steps (0: never; needs validation data)
  int64_t eval_batches = 4;       // global batches of validation samples (the same ones every time)
  // Stability guards. A step whose loss or gradient norm is NaN/Inf is skipped (no update) and
  // counted; max_bad_steps in a row stop the run. A loss above spike_factor x the mean of the last
  // anomaly_window accepted losses, or a grad norm above spike_factor x their mean norm, is an
  // anomaly: anomaly_action log (warn), skip (no update) or stop.
  int64_t max_bad_steps = 5;
  int64_t anomaly_window = 20;
  double spike_factor = 3.0;
  std::string anomaly_action = "log";  // log | skip | stop
  bool deterministic = false;     // cuda: bit-identical steps (attention dQ by a second pass, not atomics);
                                  // the CPU backend always is
  // Activation recomputation: none | selective (norm outputs and the SwiGLU product are recomputed
  // in the backward; flash attention never stores its scores anyway) | full (each layer keeps only
  // its input and recomputes its forward in the backward).
  std::string recompute = "none";
  // Each log interval, a rank whose compute time (the step minus its waits on communication) is
  // above straggler_factor x the median of its pipeline stage's ranks is named, with its host, in a
  // warning (0: off).
  double straggler_factor = 1.3;
};

// The 3D layout (Megatron's order: TP fastest, then DP, then PP; docs/parallelism.md). The world
// size must equal tensor_parallel * pipeline_parallel * data_parallel.
struct ParallelConfig {
  int64_t tensor_parallel = 1;
  int64_t pipeline_parallel = 1;
  int64_t data_parallel = 0;  // 0: world size / (tensor_parallel * pipeline_parallel)
  std::string grad_reduce_dtype = "fp32";  // fp32 | bf16: the dtype of the DP gradient reduce-scatter
  std::vector<int64_t> pipeline_layers;    // layers per stage (sums to n_layers); empty: n_layers / pp each
  // Interleaved 1F1B (Megatron's virtual pipeline): model chunks per pipeline stage, layers assigned
  // round-robin over pp * virtual_pipeline equal groups; 1: plain 1F1B.
  int64_t virtual_pipeline = 1;
  // Communication under computation (docs/parallelism.md, "Overlap"); on and off train identically.
  bool overlap_grad_reduce = true;   // a gradient bucket's DP reduce-scatter starts when the last backward finishes it
  bool overlap_param_gather = true;  // ZeRO-1's all-gather is waited on bucket by bucket in the next forward
  double bucket_size_mb = 0;         // MiB of fp32 gradients per bucket; 0: an eighth of the stage's, at most 25
  // Megatron's sequence parallelism (tp > 1): norms and residuals hold seq_length / tensor_parallel
  // positions per rank; all-gather / reduce-scatter replace the TP all-reduces (docs/parallelism.md).
  bool sequence_parallel = false;
  // Context parallelism (context_parallel.h): each sequence split over this many ranks (2c chunks,
  // rank r holds r and 2c - 1 - r), attention as a ring; grid order tp, cp, dp, pp (Megatron's).
  int64_t context_parallel = 1;
  // A TP group spread over hosts is a warning (the map at start says where every rank runs); with
  // this, an error on every rank.
  bool require_tp_in_node = false;
  // The watchdog (watchdog.h): a wait on a collective or a pipeline transfer longer than this ends
  // the job with a message naming it; the set-up and the first step get 5x as long. 0: no deadline.
  double comm_timeout_s = 300;
};

// Checkpoints (docs/formats.md): one directory per step under `dir`, written atomically.
struct CheckpointConfig {
  std::string dir;               // where step_NNNNNNNN/ directories go ("": no checkpoints)
  int64_t every = 0;             // save every N steps (0: only at the end and on SIGTERM / SIGINT)
  int64_t keep_last = 3;         // keep this many complete checkpoints (0: all)
  std::string resume = "auto";   // auto: the latest in dir, if any | never | a checkpoint directory
  bool async = false;            // snapshot to host memory, write in the background while training
  std::string init_from;         // hf:DIR: start from a Hugging Face LLaMA (weights only)
};

struct RunConfig {
  ModelConfig model;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  OptimConfig optimizer;
  ScheduleConfig schedule;
  DataConfig data;
  TrainConfig train;
  LoggingConfig logging;
  void validate() const;
};

// Loads YAML (sections model, parallel, train, optimizer, schedule, data, checkpoint, logging) and
// applies "section.key=value" overrides. An unknown key is an Error naming the nearest valid one.
RunConfig load_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
RunConfig parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {});
std::string describe(const ModelConfig& m);
// Sets one "section.key" from text (an unknown key or a bad value is an Error); no validation.
void set_config_key(RunConfig& c, const std::string& key, const std::string& value);
// Every key's value as text, and the whole config as YAML that parse_config reads back.
std::map<std::string, std::string> config_values(const RunConfig& c);
std::string config_to_yaml(const RunConfig& c);

}  // namespace llamatron
