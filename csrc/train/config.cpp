#include "llamatron/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "llamatron/batch_ramp.h"
#include "llamatron/checked.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"

namespace llamatron {

int64_t ModelConfig::resolved_ffn_dim() const {
  if (ffn_dim > 0) return ffn_dim;
  int64_t hidden = 2 * (4 * dim) / 3;
  hidden = static_cast<int64_t>(ffn_dim_multiplier * static_cast<double>(hidden));
  return multiple_of * ((hidden + multiple_of - 1) / multiple_of);
}

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw Error("invalid model config: " + msg);
  };
  // Sizes are bounded so that every size computed from them fits in int64 (token ids are int32).
  const int64_t big = std::numeric_limits<int32_t>::max();
  const auto in_range = [&](const char* key, int64_t v, int64_t lo) {
    need(v >= lo && v <= big, std::string("model.") + key + " is " + std::to_string(v) + ", expected " + std::to_string(lo) + " to " +
                                  std::to_string(big));
  };
  in_range("vocab_size", vocab_size, 1), in_range("dim", dim, 1), in_range("n_heads", n_heads, 1);
  need(n_layers >= 1 && n_layers <= kMaxLayers,
       "model.n_layers is " + std::to_string(n_layers) + ", expected 1 to " + std::to_string(kMaxLayers));
  in_range("n_kv_heads", n_kv_heads, 1), in_range("max_seq_len", max_seq_len, 1), in_range("multiple_of", multiple_of, 1);
  need(ffn_dim >= 0 && ffn_dim <= big,
       "model.ffn_dim is " + std::to_string(ffn_dim) + ", expected 0 (Meta's rule from multiple_of and ffn_dim_multiplier) to " +
           std::to_string(big));
  need(dim % n_heads == 0, "dim (" + std::to_string(dim) + ") must be divisible by n_heads (" +
                               std::to_string(n_heads) + ")");
  need(n_heads % n_kv_heads == 0, "n_heads (" + std::to_string(n_heads) + ") must be a multiple of n_kv_heads (" +
                                      std::to_string(n_kv_heads) + ")");
  need(head_dim() % 2 == 0, "head_dim = dim / n_heads = " + std::to_string(head_dim()) + " must be even for RoPE");
  need(ffn_dim > 0 || (ffn_dim_multiplier > 0 && ffn_dim_multiplier * (8.0 * static_cast<double>(dim) / 3) < static_cast<double>(big)),
       "model.ffn_dim_multiplier must be positive and give an FFN width below 2^31 (or set model.ffn_dim)");
  need(rope_theta > 0 && norm_eps > 0, "rope_theta and norm_eps must be positive");
  need(resolved_ffn_dim() >= 1, "the FFN width is " + std::to_string(resolved_ffn_dim()) + ": set model.ffn_dim, or a larger ffn_dim_multiplier");
  // The whole model, counted without overflow: far beyond any machine is an error here, before
  // anything is sized from it.
  const std::optional<int64_t> total = checked_params();
  need(total && *total <= kMaxParams, "the model has more than 2^48 parameters: check model.dim, model.vocab_size and model.n_layers");
}

std::optional<int64_t> ModelConfig::checked_params() const {
  const int64_t d = head_dim(), f = resolved_ffn_dim();
  const auto add = [](std::optional<int64_t> a, std::optional<int64_t> b) { return a && b ? checked_add(*a, *b) : std::nullopt; };
  std::optional<int64_t> layer = 2 * dim;
  layer = add(layer, checked_mul(dim, 2 * n_heads * d));
  layer = add(layer, checked_mul(dim, 2 * n_kv_heads * d));
  layer = add(layer, checked_mul(3 * dim, f));
  const std::optional<int64_t> layers = layer ? checked_mul(n_layers, *layer) : std::nullopt;
  return add(add(layers, checked_mul((tie_embeddings ? 1 : 2) * vocab_size, dim)), dim);
}

int64_t ModelConfig::num_params() const {
  const int64_t d = head_dim(), f = resolved_ffn_dim();
  const int64_t layer = 2 * dim + dim * n_heads * d * 2 + dim * n_kv_heads * d * 2 + 3 * dim * f;
  return vocab_size * dim * (tie_embeddings ? 1 : 2) + n_layers * layer + dim;
}

void RunConfig::validate() const {
  model.validate();
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw Error("invalid config: " + msg);
  };
  need(train.steps >= 0 && train.micro_batch_size > 0 && train.seq_length > 0 && train.grad_accum_steps > 0,
       "train.steps must be >= 0 and train.micro_batch_size, train.seq_length, train.grad_accum_steps positive");
  need(train.global_batch_size >= 0, "train.global_batch_size must be >= 0 (0: batch_size x grad_accum_steps x data-parallel ranks)");
  if (train.global_batch_size > 0) BatchRamp(train, train.global_batch_size);  // its own errors; the trainer checks it per layout
  need(train.threads >= 0, "train.threads must be >= 0 (0: OMP_NUM_THREADS or all cores), got " + std::to_string(train.threads));
  need(train.seq_length <= model.max_seq_len, "train.seq_length (" + std::to_string(train.seq_length) +
                                               ") exceeds model.max_seq_len (" + std::to_string(model.max_seq_len) + ")");
  // Token buffers are sized from these: their products must stay far from int64's limit (the
  // memory check then says whether the machine holds them).
  const int64_t window = train.seq_length + 1, limit = int64_t{1} << 40;
  const std::optional<int64_t> per_rank = checked_mul(train.micro_batch_size, train.grad_accum_steps);
  for (const auto& [what, samples] : {std::pair<const char*, std::optional<int64_t>>{"train.micro_batch_size x train.grad_accum_steps", per_rank},
                                      {"train.global_batch_size", train.global_batch_size},
                                      {"train.micro_batch_size x train.eval_batches", checked_mul(train.micro_batch_size, train.eval_batches)}}) {
    const std::optional<int64_t> tokens = samples ? checked_mul(*samples, window) : std::nullopt;
    need(tokens && *tokens < limit, std::string(what) + " sequences of train.seq_length + 1 tokens are more than 2^40 tokens per step: "
                                                        "no machine holds that; check the batch sizes");
  }
  need(train.precision == "bf16" || train.precision == "fp32", "train.precision must be bf16 or fp32, got '" + train.precision + "'");
  need(train.device == "cpu" || train.device == "cuda", "train.device must be cpu or cuda, got '" + train.device + "'");
  need(train.device != "cuda" || train.precision == "bf16", "train.device=cuda trains in bf16: set train.precision=bf16 (fp32 is the CPU's exact mode)");
  need(schedule.decay_style == "constant" || schedule.decay_style == "linear" || schedule.decay_style == "cosine" || schedule.decay_style == "wsd",
       "schedule.decay_style must be constant, linear, cosine or wsd, got '" + schedule.decay_style + "'");
  need(optimizer.lr > 0 && schedule.min_lr >= 0 && schedule.min_lr <= optimizer.lr, "need 0 < optimizer.lr and 0 <= schedule.min_lr <= optimizer.lr");
  need(schedule.warmup_steps >= 0, "schedule.warmup_steps must be >= 0");
  need(schedule.decay_fraction >= 0 && schedule.decay_fraction <= 1, "schedule.decay_fraction must be in [0, 1]");
  need(optimizer.beta1 >= 0 && optimizer.beta1 < 1 && optimizer.beta2 >= 0 && optimizer.beta2 < 1 && optimizer.eps > 0,
       "optimizer.beta1 and optimizer.beta2 must be in [0, 1) and optimizer.eps positive");
  need(optimizer.weight_decay >= 0 && optimizer.max_grad_norm >= 0, "optimizer.weight_decay and optimizer.max_grad_norm must be >= 0");
  const int64_t tp = parallel.tensor_parallel, pp = parallel.pipeline_parallel;
  need(tp >= 1 && pp >= 1 && parallel.data_parallel >= 0,
       "parallel.tensor_parallel and parallel.pipeline_parallel must be >= 1 and parallel.data_parallel >= 0 (0: the rest of the world)");
  need(parallel.grad_reduce_dtype == "fp32" || parallel.grad_reduce_dtype == "bf16",
       "parallel.grad_reduce_dtype must be fp32 or bf16, got '" + parallel.grad_reduce_dtype + "'");
  need(model.n_heads % tp == 0, "model.n_heads (" + std::to_string(model.n_heads) + ") must be divisible by parallel.tensor_parallel (" +
                                    std::to_string(tp) + "): each tensor-parallel rank takes whole query heads");
  need(model.n_kv_heads % tp == 0 || tp % model.n_kv_heads == 0,
       "model.n_kv_heads (" + std::to_string(model.n_kv_heads) + ") and parallel.tensor_parallel (" + std::to_string(tp) +
           ") must divide one another: KV heads are split (n_kv_heads % tp == 0) or replicated (tp % n_kv_heads == 0)");
  need(!parallel.sequence_parallel || train.seq_length % tp == 0,
       "train.seq_length (" + std::to_string(train.seq_length) + ") must be divisible by parallel.tensor_parallel (" + std::to_string(tp) +
           ") with parallel.sequence_parallel: each tensor-parallel rank holds an equal chunk of the sequence; change one, or "
           "set parallel.sequence_parallel=false");
  const int64_t cp = parallel.context_parallel;
  need(cp >= 1 && cp <= 4096, "parallel.context_parallel must be >= 1 (ranks that split each sequence; 1: off)");
  need(cp == 1 || train.seq_length % (2 * cp) == 0,
       "train.seq_length (" + std::to_string(train.seq_length) + ") must be divisible by 2 x parallel.context_parallel (" +
           std::to_string(2 * cp) + "): context parallelism cuts each sequence into 2c equal chunks; change one");
  need(!parallel.sequence_parallel || (train.seq_length / cp) % tp == 0,
       "each context-parallel rank's " + std::to_string(train.seq_length / cp) + " positions must be divisible by "
       "parallel.tensor_parallel (" + std::to_string(tp) + ") with parallel.sequence_parallel: change train.seq_length");
  need(cp == 1 || !logging.gns, "logging.gns with parallel.context_parallel > 1 is not supported (a rank's gradient covers part of "
                                "each sequence): set one of them off");
  need(model.resolved_ffn_dim() % tp == 0, "the FFN width (" + std::to_string(model.resolved_ffn_dim()) +
                                               ") must be divisible by parallel.tensor_parallel (" + std::to_string(tp) + ")");
  const int64_t v = parallel.virtual_pipeline;
  need(v >= 1 && v <= ModelConfig::kMaxLayers, "parallel.virtual_pipeline must be >= 1 (model chunks per pipeline stage; 1: plain 1F1B)");
  need(v == 1 || pp > 1, "parallel.virtual_pipeline (" + std::to_string(v) + ") needs parallel.pipeline_parallel > 1: chunks interleave "
                         "over pipeline stages");
  need(v == 1 || parallel.pipeline_layers.empty(), "parallel.pipeline_layers lists layers per stage for plain 1F1B: with "
                                                  "parallel.virtual_pipeline > 1 the layers split evenly into pipeline_parallel x "
                                                  "virtual_pipeline chunks; drop one of the two");
  need(v == 1 || (pp <= model.n_layers && model.n_layers % (pp * v) == 0),
       "model.n_layers (" + std::to_string(model.n_layers) + ") must be divisible by parallel.pipeline_parallel x parallel.virtual_pipeline (" +
           std::to_string(pp) + " x " + std::to_string(v) + " = " + std::to_string(pp * v) + " chunks of equal layers)");
  need(v == 1 || !train.grad_accum_given || train.grad_accum_steps % pp == 0,
       "parallel.virtual_pipeline (" + std::to_string(v) + ") needs train.grad_accum_steps (" + std::to_string(train.grad_accum_steps) +
           ") to be a multiple of parallel.pipeline_parallel (" + std::to_string(pp) + "): the interleaved schedule runs micro-batches in groups of pp");
  if (parallel.pipeline_layers.empty()) {
    need(model.n_layers % pp == 0, "model.n_layers (" + std::to_string(model.n_layers) + ") must be divisible by parallel.pipeline_parallel (" +
                                       std::to_string(pp) + "): each pipeline stage takes the same number of layers, or list "
                                       "them per stage in parallel.pipeline_layers");
  } else {
    int64_t total = 0;
    bool each_fits = true;  // each in [1, n_layers], so the sum cannot overflow
    for (int64_t n : parallel.pipeline_layers) each_fits &= n >= 1 && n <= model.n_layers, total += each_fits ? n : 0;
    need(static_cast<int64_t>(parallel.pipeline_layers.size()) == pp && total == model.n_layers && each_fits,
         "parallel.pipeline_layers must list " + std::to_string(pp) + " positive layer counts (one per stage) that add up to "
         "model.n_layers (" + std::to_string(model.n_layers) + ")");
  }
  need(data.source == "synthetic" || data.source == "llmc" || data.source == "megatron",
       "data.source must be synthetic, llmc or megatron, got '" + data.source + "'");
  need(data.source == "synthetic" || !data.paths.empty(),
       "data.source is " + data.source + " but data.paths is empty: list the shard files (llmc) or dataset prefixes (megatron)");
  need(data.weights.empty() || data.weights.size() == data.paths.size(),
       "data.weights has " + std::to_string(data.weights.size()) + " entries but data.paths has " + std::to_string(data.paths.size()) +
           ": give one blend weight per dataset");
  for (double w : data.weights)
    need(w > 0 && std::isfinite(w), "data.weights must all be positive, got " + (std::ostringstream() << w).str() +
                                        ": drop the dataset instead of weighting it 0 or less");
  need(data.valid_fraction >= 0 && data.valid_fraction < 0.5, "data.valid_fraction must be in [0, 0.5)");
  need(data.eod_id >= -1 && data.eod_id < model.vocab_size,
       "data.eod_id " + std::to_string(data.eod_id) + " is outside the vocabulary [0, " + std::to_string(model.vocab_size) +
           "): give the tokenizer's end-of-document id (or -1: the one recorded with the data)");
  need(data.valid_paths.empty() || data.valid_fraction == 0, "set data.valid_paths or data.valid_fraction, not both");
  need(data.source != "synthetic" || (data.valid_paths.empty() && data.valid_fraction == 0),
       "synthetic data validates on fresh samples: data.valid_paths and data.valid_fraction are for llmc or megatron data");
  need(checkpoint.every >= 0 && checkpoint.keep_last >= 0, "checkpoint.every and checkpoint.keep_last must be >= 0");
  need(checkpoint.init_from.empty() || checkpoint.init_from.rfind("hf:", 0) == 0,
       "checkpoint.init_from must be hf:DIR (a Hugging Face LLaMA directory), got '" + checkpoint.init_from + "'");
  need(train.max_bad_steps >= 1 && train.anomaly_window >= 1 && train.spike_factor > 1,
       "train.max_bad_steps and train.anomaly_window must be >= 1 and train.spike_factor > 1");
  need(train.straggler_factor == 0 || train.straggler_factor > 1,
       "train.straggler_factor must be > 1 (a rank that much slower than the median is named) or 0 (off)");
  need(parallel.comm_timeout_s >= 0, "parallel.comm_timeout_s must be >= 0 (seconds a wait on a collective may take; 0: no deadline)");
  need(train.anomaly_action == "log" || train.anomaly_action == "skip" || train.anomaly_action == "stop",
       "train.anomaly_action must be log, skip or stop, got '" + train.anomaly_action + "'");
  need(train.eval_every >= 0 && train.eval_batches >= 1, "train.eval_every must be >= 0 and train.eval_batches >= 1");
  need(train.recompute == "none" || train.recompute == "selective" || train.recompute == "full",
       "train.recompute must be none, selective or full, got '" + train.recompute + "'");
  need(logging.log_every >= 1, "logging.log_every must be >= 1");
  need(parallel.bucket_size_mb >= 0 && parallel.bucket_size_mb <= 1 << 20,
       "parallel.bucket_size_mb must be in [0, 1048576] (0: automatic)");
  need(logging.gns_ema >= 0 && logging.gns_ema < 1, "logging.gns_ema must be in [0, 1) (the EMA factor of the gradient noise scale; 0: no smoothing)");
  for (int64_t s : logging.trace_steps)
    need(s >= 1, "logging.trace_steps lists 1-based step numbers, got " + std::to_string(s));
  need(logging.progress == "auto" || logging.progress == "always" || logging.progress == "never",
       "logging.progress must be auto (a bar on a terminal), always or never, got '" + logging.progress + "'");
  need(data.markov_order >= 1 && data.markov_branching >= 1 && data.markov_branching <= model.vocab_size,
       "data.markov_order must be >= 1 and data.markov_branching in [1, vocab_size]");
}

namespace {

// One table of every key: its path and how to set it from text.
using Setter = std::function<void(RunConfig&, const std::string&)>;

template <typename T>
T parse_value(const std::string& key, const std::string& text);

template <>
int64_t parse_value<int64_t>(const std::string& key, const std::string& text) {
  size_t used = 0;
  try {
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("config key '" + key + "' expects an integer, got '" + text + "'");
}
template <>
uint64_t parse_value<uint64_t>(const std::string& key, const std::string& text) {
  const int64_t v = parse_value<int64_t>(key, text);
  if (v < 0) throw Error("config key '" + key + "' expects a non-negative integer, got '" + text + "'");
  return static_cast<uint64_t>(v);
}
template <>
double parse_value<double>(const std::string& key, const std::string& text) {
  size_t used = 0;
  try {
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error("config key '" + key + "' expects a number, got '" + text + "'");
}
template <>
bool parse_value<bool>(const std::string& key, const std::string& text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  throw Error("config key '" + key + "' expects true or false, got '" + text + "'");
}
template <>
std::string parse_value<std::string>(const std::string&, const std::string& text) {
  return text;
}
template <>
std::vector<std::string> parse_value<std::vector<std::string>>(const std::string&, const std::string& text) {
  std::vector<std::string> out;  // comma-separated (YAML lists are joined with commas on load)
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

template <>
std::vector<int64_t> parse_value<std::vector<int64_t>>(const std::string& key, const std::string& text) {
  std::vector<int64_t> out;
  for (const std::string& item : parse_value<std::vector<std::string>>(key, text)) out.push_back(parse_value<int64_t>(key, item));
  return out;
}

template <>
std::vector<double> parse_value<std::vector<double>>(const std::string& key, const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : parse_value<std::vector<std::string>>(key, text)) out.push_back(parse_value<double>(key, item));
  return out;
}

// Values as text, the way the YAML loader hands them over (lists comma-joined; doubles exact).
std::string format_value(const std::string& v) { return v; }
std::string format_value(bool v) { return v ? "true" : "false"; }
template <typename T>
std::string format_value(const T& v) {
  if constexpr (std::is_same_v<T, double>) {
    std::ostringstream s;
    s.precision(17);
    s << v;
    return s.str();
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else {  // a vector
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + format_value(x);
    return out;
  }
}

using Getter = std::function<std::string(const RunConfig&)>;
struct Field {
  Setter set;
  Getter get;
};

template <typename S, typename T>
std::pair<std::string, Field> field(const std::string& key, S RunConfig::*section, T S::*member) {
  return {key, {[=](RunConfig& c, const std::string& text) { (c.*section).*member = parse_value<T>(key, text); },
                [=](const RunConfig& c) { return format_value((c.*section).*member); }}};
}

const std::map<std::string, Field>& fields() {
  using R = RunConfig;
  static const std::map<std::string, Field> table = {
      field("model.vocab_size", &R::model, &ModelConfig::vocab_size),
      field("model.dim", &R::model, &ModelConfig::dim),
      field("model.n_layers", &R::model, &ModelConfig::n_layers),
      field("model.n_heads", &R::model, &ModelConfig::n_heads),
      field("model.n_kv_heads", &R::model, &ModelConfig::n_kv_heads),
      field("model.ffn_dim", &R::model, &ModelConfig::ffn_dim),
      field("model.multiple_of", &R::model, &ModelConfig::multiple_of),
      field("model.ffn_dim_multiplier", &R::model, &ModelConfig::ffn_dim_multiplier),
      field("model.max_seq_len", &R::model, &ModelConfig::max_seq_len),
      field("model.rope_theta", &R::model, &ModelConfig::rope_theta),
      field("model.norm_eps", &R::model, &ModelConfig::norm_eps),
      field("model.tie_embeddings", &R::model, &ModelConfig::tie_embeddings),
      field("parallel.tensor_parallel", &R::parallel, &ParallelConfig::tensor_parallel),
      field("parallel.pipeline_parallel", &R::parallel, &ParallelConfig::pipeline_parallel),
      field("parallel.data_parallel", &R::parallel, &ParallelConfig::data_parallel),
      field("parallel.grad_reduce_dtype", &R::parallel, &ParallelConfig::grad_reduce_dtype),
      field("parallel.pipeline_layers", &R::parallel, &ParallelConfig::pipeline_layers),
      field("parallel.virtual_pipeline", &R::parallel, &ParallelConfig::virtual_pipeline),
      field("parallel.overlap_grad_reduce", &R::parallel, &ParallelConfig::overlap_grad_reduce),
      field("parallel.overlap_param_gather", &R::parallel, &ParallelConfig::overlap_param_gather),
      field("parallel.bucket_size_mb", &R::parallel, &ParallelConfig::bucket_size_mb),
      field("parallel.sequence_parallel", &R::parallel, &ParallelConfig::sequence_parallel),
      field("parallel.context_parallel", &R::parallel, &ParallelConfig::context_parallel),
      field("parallel.require_tp_in_node", &R::parallel, &ParallelConfig::require_tp_in_node),
      field("parallel.comm_timeout_s", &R::parallel, &ParallelConfig::comm_timeout_s),
      field("checkpoint.dir", &R::checkpoint, &CheckpointConfig::dir),
      field("checkpoint.every", &R::checkpoint, &CheckpointConfig::every),
      field("checkpoint.keep_last", &R::checkpoint, &CheckpointConfig::keep_last),
      field("checkpoint.resume", &R::checkpoint, &CheckpointConfig::resume),
      field("checkpoint.async", &R::checkpoint, &CheckpointConfig::async),
      field("checkpoint.init_from", &R::checkpoint, &CheckpointConfig::init_from),
      field("optimizer.lr", &R::optimizer, &OptimConfig::lr),
      field("schedule.min_lr", &R::schedule, &ScheduleConfig::min_lr),
      field("schedule.decay_style", &R::schedule, &ScheduleConfig::decay_style),
      field("schedule.warmup_steps", &R::schedule, &ScheduleConfig::warmup_steps),
      field("schedule.decay_fraction", &R::schedule, &ScheduleConfig::decay_fraction),
      field("optimizer.beta1", &R::optimizer, &OptimConfig::beta1),
      field("optimizer.beta2", &R::optimizer, &OptimConfig::beta2),
      field("optimizer.eps", &R::optimizer, &OptimConfig::eps),
      field("optimizer.weight_decay", &R::optimizer, &OptimConfig::weight_decay),
      field("optimizer.decay_embeddings", &R::optimizer, &OptimConfig::decay_embeddings),
      field("optimizer.max_grad_norm", &R::optimizer, &OptimConfig::max_grad_norm),
      field("data.source", &R::data, &DataConfig::source),
      field("data.paths", &R::data, &DataConfig::paths),
      field("data.weights", &R::data, &DataConfig::weights),
      field("data.shuffle", &R::data, &DataConfig::shuffle),
      field("data.valid_paths", &R::data, &DataConfig::valid_paths),
      field("data.valid_fraction", &R::data, &DataConfig::valid_fraction),
      field("data.markov_order", &R::data, &DataConfig::markov_order),
      field("data.markov_branching", &R::data, &DataConfig::markov_branching),
      field("data.markov_seed", &R::data, &DataConfig::markov_seed),
      field("data.eod_id", &R::data, &DataConfig::eod_id),
      field("data.reset_attention_mask", &R::data, &DataConfig::reset_attention_mask),
      field("data.reset_position_ids", &R::data, &DataConfig::reset_position_ids),
      field("data.eod_mask_loss", &R::data, &DataConfig::eod_mask_loss),
      field("train.steps", &R::train, &TrainConfig::steps),
      field("train.micro_batch_size", &R::train, &TrainConfig::micro_batch_size),
      field("train.seq_length", &R::train, &TrainConfig::seq_length),
      field("train.grad_accum_steps", &R::train, &TrainConfig::grad_accum_steps),
      field("train.global_batch_size", &R::train, &TrainConfig::global_batch_size),
      field("train.rampup_batch_size", &R::train, &TrainConfig::rampup_batch_size),
      field("train.precision", &R::train, &TrainConfig::precision),
      field("train.seed", &R::train, &TrainConfig::seed),
      field("train.threads", &R::train, &TrainConfig::threads),
      field("train.device", &R::train, &TrainConfig::device),
      field("train.eval_every", &R::train, &TrainConfig::eval_every),
      field("train.eval_batches", &R::train, &TrainConfig::eval_batches),
      field("train.max_bad_steps", &R::train, &TrainConfig::max_bad_steps),
      field("train.anomaly_window", &R::train, &TrainConfig::anomaly_window),
      field("train.spike_factor", &R::train, &TrainConfig::spike_factor),
      field("train.straggler_factor", &R::train, &TrainConfig::straggler_factor),
      field("train.anomaly_action", &R::train, &TrainConfig::anomaly_action),
      field("train.deterministic", &R::train, &TrainConfig::deterministic),
      field("train.recompute", &R::train, &TrainConfig::recompute),
      field("logging.log_every", &R::logging, &LoggingConfig::log_every),
      field("logging.metrics_file", &R::logging, &LoggingConfig::metrics_file),
      field("logging.tensorboard_dir", &R::logging, &LoggingConfig::tensorboard_dir),
      field("logging.gns", &R::logging, &LoggingConfig::gns),
      field("logging.gns_ema", &R::logging, &LoggingConfig::gns_ema),
      field("logging.log_comm", &R::logging, &LoggingConfig::log_comm),
      field("logging.cpu_peak_tflops", &R::logging, &LoggingConfig::cpu_peak_tflops),
      field("logging.progress", &R::logging, &LoggingConfig::progress),
      field("logging.trace_file", &R::logging, &LoggingConfig::trace_file),
      field("logging.trace_steps", &R::logging, &LoggingConfig::trace_steps),
  };
  return table;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The valid key an unknown one most likely meant: Megatron's and Hugging Face's names for our
// settings first (too far apart to be typos), then the closest key by edit distance, comparing
// whole keys and names without their section (a key in the wrong section).
std::string nearest_key(const std::string& key) {
  static const std::map<std::string, std::string> known_as = {
      {"batch_size", "train.micro_batch_size"}, {"seq_len", "train.seq_length"},
      {"hidden_size", "model.dim"}, {"num_layers", "model.n_layers"}, {"num_attention_heads", "model.n_heads"},
      {"num_query_groups", "model.n_kv_heads"}, {"num_key_value_heads", "model.n_kv_heads"},
      {"ffn_hidden_size", "model.ffn_dim"}, {"intermediate_size", "model.ffn_dim"},
      {"max_position_embeddings", "model.max_seq_len"}, {"rms_norm_eps", "model.norm_eps"},
      {"untie_embeddings_and_output_weights", "model.tie_embeddings"}, {"tie_word_embeddings", "model.tie_embeddings"},
      {"tensor_model_parallel_size", "parallel.tensor_parallel"}, {"pipeline_model_parallel_size", "parallel.pipeline_parallel"},
      {"data_parallel_size", "parallel.data_parallel"}, {"context_parallel_size", "parallel.context_parallel"},
      {"train_iters", "train.steps"}, {"max_steps", "train.steps"},
      {"gradient_accumulation_steps", "train.grad_accum_steps"}, {"recompute_granularity", "train.recompute"},
      {"lr_warmup_iters", "schedule.warmup_steps"}, {"lr_decay_style", "schedule.decay_style"}, {"schedule", "schedule.decay_style"},
      {"clip_grad", "optimizer.max_grad_norm"}, {"adam_beta1", "optimizer.beta1"}, {"adam_beta2", "optimizer.beta2"},
      {"adam_eps", "optimizer.eps"}, {"log_interval", "logging.log_every"}, {"save_interval", "checkpoint.every"},
      {"save", "checkpoint.dir"}, {"load", "checkpoint.resume"}, {"data_path", "data.paths"}};
  const size_t dot = key.find('.');
  const std::string name = key.substr(dot + 1);
  if (auto it = known_as.find(name); it != known_as.end()) return it->second;
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& [k, f] : fields()) {
    const size_t d = std::min(edit_distance(key, k), edit_distance(name, k.substr(k.find('.') + 1)) + 1);
    if (d < best_d) best_d = d, best = k;
  }
  return best_d <= std::max<size_t>(3, name.size() / 3) ? best : "";
}

void set_key(RunConfig& c, const std::string& key, const std::string& value) {
  if (key.find('.') == std::string::npos)
    throw Error("config entry '" + key + "' is not inside a section: write e.g. 'train: {steps: 10}' or --set train.steps=10");
  auto it = fields().find(key);
  if (it == fields().end()) {
    const std::string near = nearest_key(key);
    throw Error("unknown config key '" + key + "': " +
                (near.empty() ? "the sections are model, parallel, train, optimizer, schedule, data, checkpoint, logging (docs/config.md)"
                              : "did you mean '" + near + "'?"));
  }
  it->second.set(c, value);
}

// Flattens the YAML tree into "section.key" -> text; lists become comma-joined text.
// Aliases (*a) repeat a node without repeating its text: the flattened values are bounded, so a
// small file cannot expand into gigabytes.
constexpr size_t kMaxFlattenedBytes = size_t{64} << 20;

void flatten(const YAML::Node& node, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out, size_t& bytes) {
  if (node.IsMap()) {
    if (prefix.find('.') != std::string::npos) throw Error("config key '" + prefix + "' takes a value, not a mapping");
    std::set<std::string> seen;  // YAML mapping keys are unique; yaml-cpp would silently take the last
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) throw Error("config " + (prefix.empty() ? "section" : "key in '" + prefix + "'") + " names must be plain words");
      const std::string key = prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>();
      if (!seen.insert(kv.first.as<std::string>()).second)
        throw Error("config " + std::string(prefix.empty() ? "section '" : "key '") + key + "' appears twice: keep one (YAML would silently take the last)");
      flatten(kv.second, key, out, bytes);
    }
  } else if (node.IsSequence()) {
    std::string joined;
    for (const auto& item : node) {
      if (!item.IsScalar()) throw Error("config key '" + prefix + "' must be a list of plain values");
      joined += (joined.empty() ? "" : ",") + item.as<std::string>();
      if (joined.size() > kMaxFlattenedBytes) throw Error("config key '" + prefix + "' holds a list of more than 64 MiB: not a run config");
    }
    out.emplace_back(prefix, joined);
  } else if (node.IsScalar()) {
    out.emplace_back(prefix, node.as<std::string>());
  } else if (!prefix.empty()) {
    throw Error("config key '" + prefix + "' has no value");
  }
  if (!node.IsMap() && !out.empty() && (bytes += out.back().second.size()) > kMaxFlattenedBytes)
    throw Error("config values add up to more than 64 MiB (YAML aliases repeating a large value?): not a run config");
}

}  // namespace

void set_config_key(RunConfig& c, const std::string& key, const std::string& value) { set_key(c, key, value); }

std::map<std::string, std::string> config_values(const RunConfig& c) {
  std::map<std::string, std::string> out;
  for (const auto& [k, f] : fields()) out[k] = f.get(c);
  return out;
}

// A value as a YAML scalar that reads back as the same text: plain when it is a plain number or
// word, else double-quoted with escapes (a path with ": " or "#" would otherwise change meaning).
std::string yaml_scalar(const std::string& v) {
  const bool plain = !v.empty() && std::all_of(v.begin(), v.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-' || ch == '+' || ch == '/';
  }) && v.front() != '-' && !YAML::IsNullString(v);
  if (plain) return v;
  YAML::Emitter e;
  e << YAML::DoubleQuoted << v;
  return e.c_str();
}

std::string config_to_yaml(const RunConfig& c) {
  std::string out, section;
  for (const auto& [k, v] : config_values(c)) {
    const std::string sec = k.substr(0, k.find('.')), key = k.substr(k.find('.') + 1);
    if (sec != section) out += sec + ":\n", section = sec;
    const bool list = k == "data.paths" || k == "data.valid_paths" || k == "data.weights" || k == "parallel.pipeline_layers";
    std::string value;
    if (list) {  // items are comma-separated in the text (parse_value splits them again)
      std::stringstream items(v);
      for (std::string item; std::getline(items, item, ',');)
        if (!item.empty()) value += (value.empty() ? "" : ", ") + yaml_scalar(item);
      value = "[" + value + "]";
    } else {
      value = yaml_scalar(v);
    }
    out += "  " + key + ": " + value + "\n";
  }
  return out;
}

RunConfig parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error("config is not valid YAML: " + std::string(e.what()));
  }
  if (!root.IsNull() && !root.IsMap())
    throw Error("config must be a YAML mapping of sections (model, parallel, train, optimizer, schedule, data, checkpoint, logging), "
                "e.g. 'train: {steps: 10}'");
  std::vector<std::pair<std::string, std::string>> kv;
  size_t bytes = 0;
  flatten(root, "", kv, bytes);
  std::set<std::string> keys;  // also across spellings: a section's key and a dotted top-level one
  for (const auto& [k, v] : kv)
    if (!keys.insert(k).second) throw Error("config key '" + k + "' appears twice: keep one (YAML would silently take the last)");
  RunConfig c;
  for (const auto& [k, v] : kv) set_key(c, k, v), c.train.grad_accum_given |= k == "train.grad_accum_steps";
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--set expects key=value (e.g. train.steps=10), got '" + o + "'");
    set_key(c, o.substr(0, eq), o.substr(eq + 1));
    c.train.grad_accum_given |= o.substr(0, eq) == "train.grad_accum_steps";
  }
  c.validate();
  return c;
}

RunConfig load_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(yaml_path, ec)) throw Error("config file '" + yaml_path + "' does not exist: check the path");
  const std::string text = read_small_file(yaml_path, "config file", uint64_t{16} << 20);
  try {
    return parse_config(text, overrides);
  } catch (const Error& e) {
    throw Error(yaml_path + ": " + e.what());
  }
}

std::string describe(const ModelConfig& m) {
  std::ostringstream s;
  s << "LLaMA V=" << m.vocab_size << " C=" << m.dim << " L=" << m.n_layers << " H=" << m.n_heads
    << " KV=" << m.n_kv_heads << " D=" << m.head_dim() << " F=" << m.resolved_ffn_dim()
    << (m.tie_embeddings ? " tied" : "") << " params=" << m.num_params();
  return s.str();
}

}  // namespace llamatron
