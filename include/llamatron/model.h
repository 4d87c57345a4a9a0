// The LLaMA model: parameters in a ParamStore, forward and a hand-written backward over the op
// interface. It is built as "layers [first, last) of a pipeline stage, each linear's slice for a
// tensor-parallel rank" (ARCHITECTURE.md, principle 5); in a single process that is all layers,
// whole matrices.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llamatron/config.h"
#include "llamatron/documents.h"
#include "llamatron/params.h"
#include "llamatron/sequence_parallel.h"
#include "llamatron/tensor.h"

namespace llamatron {

class Communicator;
struct ContextSplit;
struct LayerTensors;

// Activation recomputation (train.recompute): what each micro-batch keeps for its backward.
enum class Recompute { None, Selective, Full };
Recompute parse_recompute(const std::string& name);  // none | selective | full

// This rank's part of the model (ARCHITECTURE.md, principle 5); the defaults are the whole model.
struct ModelShard {
  int64_t zero_shards = 1;          // the flat buffers are padded into this many equal ZeRO-1 shards (dp)
  int tp = 1, tp_rank = 0;          // tensor parallelism (Megatron): this rank's slice of every linear
  Communicator* tp_group = nullptr;  // required when tp > 1
  int pp = 1, pp_rank = 0;          // pipeline stage: consecutive layers, n_layers / pp each...
  std::vector<int64_t> stage_layers;  // ...or these many on each stage (chunks == 1)
  // Interleaved 1F1B (parallel.virtual_pipeline): the layers form pp * chunks equal groups and
  // chunk c of this stage holds group c * pp + pp_rank (Megatron's round-robin assignment).
  int chunks = 1;
  // Sequence parallelism (tp > 1): outside the TP linears each rank holds T / tp positions of every
  // sequence (include/llamatron/sequence_parallel.h); stage inputs and outputs are [B*T/tp, C].
  bool sequence_parallel = false;
  // Context parallelism (context_parallel.h): this rank holds chunks cp_rank and 2 cp - 1 - cp_rank
  // of every sequence (T / cp positions); attention runs as a ring over cp_group (required when cp > 1).
  int cp = 1, cp_rank = 0;
  Communicator* cp_group = nullptr;
  bool first_stage() const { return pp_rank == 0; }       // holds the embedding (in chunk 0)
  bool last_stage() const { return pp_rank == pp - 1; }   // holds the final norm, head and loss (in the last chunk)
  // Global layers [first, last) of chunk c.
  int64_t first_layer(const ModelConfig& c, int chunk = 0) const { return layers_before(c, chunk * pp + pp_rank); }
  int64_t last_layer(const ModelConfig& c, int chunk = 0) const { return layers_before(c, chunk * pp + pp_rank + 1); }
  std::vector<int64_t> layer_ids(const ModelConfig& c) const {  // this stage's layers, chunk after chunk (ascending)
    std::vector<int64_t> ids;
    for (int k = 0; k < chunks; ++k)
      for (int64_t l = first_layer(c, k); l < last_layer(c, k); ++l) ids.push_back(l);
    return ids;
  }
  // Layers before layer group g (g = chunk * pp + stage).
  int64_t layers_before(const ModelConfig& c, int group) const {
    if (stage_layers.empty()) return group * (c.n_layers / (pp * chunks));
    int64_t n = 0;
    for (int s = 0; s < group; ++s) n += stage_layers[s];
    return n;
  }
};

// Names, local shapes and global placement of this shard's parameters, Hugging Face naming
// (FACTS.md). Column-parallel (split rows): q, k, v, gate, up, and the vocab-parallel embedding and
// head; row-parallel (split columns): o, down; replicated: norms, and KV heads when tp > n_kv_heads.
std::vector<ParamSpec> llama_param_specs(const ModelConfig& cfg, const ModelShard& shard = {});

// Generation with a KV cache (LlamaModel::prefill / decode): per layer, the keys (after RoPE) and
// values of every position so far of `batch` sequences, on the model's device.
struct KvCache {
  int64_t batch = 0, capacity = 0;  // sequences; positions each (at most model.max_seq_len)
  std::vector<Tensor> k, v;         // per layer [batch, capacity, n_kv_heads, head_dim]
  std::vector<int64_t> length;      // positions cached per sequence
  std::vector<int64_t> doc_start;   // per sequence: where the next position's document starts (after its last eod)
};

class LlamaModel {
 public:
  // device: where parameters and activations live (CPU, or CUDA with a registered backend).
  LlamaModel(const ModelConfig& cfg, DType dtype, Device device = Device::CPU, const ModelShard& shard = {});
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  ParamStore& params() { return *params_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // N(0, 0.02) for embeddings and projections, 0.02/sqrt(2L) for the residual-output projections
  // (o, down), ones for norm weights. Deterministic in the seed.
  void init_weights(uint64_t seed);

  // One micro-batch through the whole model (pp == 1): tokens [B, T+1] (inputs tokens[:, :T],
  // targets tokens[:, 1:]; a target equal to kIgnoreIndex is skipped). Returns the summed loss over
  // counted targets and adds d(loss_scale * summed loss)/d(params) to the gradients.
  double forward_backward(const int32_t* tokens, int64_t batch, int64_t seq, float loss_scale);
  // Forward only: the summed loss (evaluation; pp == 1).
  double forward_loss(const int32_t* tokens, int64_t batch, int64_t seq);

  // A pipeline stage's halves, on micro-batch slot `slot` (1F1B keeps several in flight; each slot
  // holds one micro-batch's activations). forward_stage: the first stage embeds the tokens, the
  // others start from stage_input(slot), which the caller has filled with the previous stage's
  // output; the last stage returns the summed loss (others 0; their result is stage_output).
  // backward_stage: the last stage starts from its loss, the others from output_grad(), which the
  // caller has filled with the next stage's input_grad(); afterwards input_grad() holds this
  // stage's. On a pipeline stage (pp > 1) the two are different buffers, so input_grad() stays
  // intact (it may still be in flight) while the next output_grad() is received and used; it is
  // overwritten by the backward after next.
  // With interleaved 1F1B each call runs one chunk of the stage, in any slot (the chunks have
  // equal layers); the embedding is chunk 0's on the first stage, the head and loss the last
  // chunk's on the last.
  double forward_stage(int slot, const int32_t* tokens, int64_t batch, int64_t seq, float loss_scale, int chunk = 0);
  // last_micro_batch: the step's final backward of this chunk; its gradients are final layer by
  // layer, which the gradient hook hears.
  void backward_stage(int slot, bool last_micro_batch = false, int chunk = 0);
  const Tensor& stage_input(int slot, int64_t batch, int64_t seq);  // [B*T, C] ([B*T/tp, C] with SP)
  const Tensor& stage_output(int slot) const;                       // the same shapes
  const Tensor& output_grad() const;
  const Tensor& input_grad() const;
  // After the last micro-batch's backward: sums the gradients of replicated KV heads over their
  // replicas (tp > n_kv_heads) and, with sequence parallelism, the norm weights' over TP (each rank
  // saw its positions only), unless that backward did already.
  void finish_gradients();
  const ModelShard& shard() const { return shard_; }

  // Hooks for communication that overlaps (ZeRO-1's buckets, docs/parallelism.md "Overlap"). The
  // gradient hook hears, during a last_micro_batch backward, each time the gradients at flat
  // offsets >= its argument have become final (decreasing offsets). The parameter hook is called
  // with a flat range [lo, hi) just before the forward reads those parameters.
  void set_gradient_hook(std::function<void(int64_t)> final_from) { grads_final_ = std::move(final_from); }
  void set_param_hook(std::function<void(int64_t, int64_t)> before_use) { params_needed_ = std::move(before_use); }

  // Sampling without recomputing the prefix (the whole model in one process: pp = tp = 1). A cache
  // for `batch` sequences of up to `capacity` positions; prefill runs sequence `row`'s prompt
  // (`n` tokens, the row empty) through the model and decode one more token for each of `rows`,
  // at its next position; both append their keys and values to the cache and return the logits of
  // each sequence's last position, [rows, vocab_size] fp32 on the host.
  KvCache make_kv_cache(int64_t batch, int64_t capacity) const;
  std::vector<float> prefill(KvCache& cache, int64_t row, const int32_t* tokens, int64_t n);
  std::vector<float> decode(KvCache& cache, const std::vector<int64_t>& rows, const std::vector<int32_t>& tokens);

  // When set, the logits [B*T, V] of the last forward are kept (tests; costs a copy).
  void keep_logits(bool keep) { keep_logits_ = keep; }
  const Tensor& last_logits() const { return kept_logits_; }

  // What the forward keeps; the rest is recomputed in the backward (same ops, same inputs: the
  // gradients are bit-identical). Set before training: it re-makes the activation buffers.
  void set_recompute(Recompute mode);
  Recompute recompute() const { return recompute_; }

  // Packed documents (data.reset_attention_mask, reset_position_ids, eod_mask_loss; documents.h):
  // every forward, prefill and decode from now on finds the documents of its tokens.
  void set_documents(const DocumentRules& rules) { docs_ = rules; }
  const DocumentRules& documents() const { return docs_; }

  // Attention tile sizes (tests use small ones to exercise the multi-tile path).
  void set_attention_blocks(int64_t block_q, int64_t block_k) { block_q_ = block_q, block_k_ = block_k; }

 private:
  struct Weights;
  struct WeightsLayer;
  struct Activations;
  struct Scratch;
  struct HeadBuffers;
  Activations& slot(int i, int64_t batch, int64_t seq);  // allocated on first use and on a new shape
  void bind_head(int i, Activations& a);     // the head's tensors for slot i, from the pool
  void release_head(int i, Activations& a);  // back to the pool
  bool holds_embedding(int chunk) const { return shard_.first_stage() && chunk == 0; }
  bool holds_head(int chunk) const { return shard_.last_stage() && chunk == shard_.chunks - 1; }

  // The whole sequence of this rank's rows (sequence parallelism: gathered into the scratch's
  // buffer `buf`, 0 for gradients and partial sums, 1 for normed inputs; otherwise `local` itself).
  SeqGather whole_sequence(const Tensor& local, int buf) const;
  // Where a row-parallel product writes its partial sums: `out` (summed in place) or, with SP, the
  // scratch's whole-sequence buffer 0, reduce-scattered into out by sum_partial.
  const Tensor& partial_for(const Tensor& out) const;
  Handle sum_partial(const Tensor& partial, const Tensor& out) const;
  void reduce_kv_replicas(size_t layer) const;  // replicated KV heads' gradients summed over their holders
  void sum_norm_over_tp(const Tensor& grad) const;  // SP: a norm weight's gradient over the positions of every rank
  struct Range {
    int64_t lo = 0, hi = 0;  // flat-buffer elements
  };
  Range range_of(const std::vector<std::string>& names) const;
  void need_params(const Range& r) const {
    if (params_needed_) params_needed_(r.lo, r.hi);
  }
  void attention_block(const LayerTensors& x, const WeightsLayer& w, const Activations& a) const;
  ContextSplit context_split(const Activations& a) const;  // context parallelism's chunks of a's sequences
  // The cached path's layers and head (kv_cache.cpp): rows x [N, C] of the residual stream, their
  // attention by `attend(layer, q, k, v, out)` on [.., H or KV, D] tensors after RoPE at `positions`.
  struct CachedRows;
  std::vector<float> cached_forward(KvCache& cache, const CachedRows& rows);
  void mlp_block_up(const LayerTensors& x, const WeightsLayer& w) const;
  ModelConfig cfg_;
  ModelShard shard_;
  int64_t heads_ = 0, kv_heads_ = 0, ffn_ = 0, vocab_rows_ = 0;  // this rank's
  int64_t vocab_start_ = 0, vocab_valid_ = 0;  // global vocab rows this rank holds, unpadded
  std::unique_ptr<Communicator> kv_replicas_;   // ranks holding the same replicated KV head
  DType dtype_;
  Device device_;
  std::unique_ptr<ParamStore> params_;
  std::unique_ptr<Weights> w_;
  std::vector<Activations> slots_;
  std::vector<HeadBuffers> head_pool_;
  std::vector<int64_t> layer_ids_;    // the global layer of each local one (chunk after chunk)
  std::vector<int64_t> chunk_begin_;  // chunk c's local layers are [chunk_begin_[c], chunk_begin_[c + 1])
  std::unique_ptr<Scratch> scratch_;
  Tensor rope_cos_, rope_sin_;
  bool keep_logits_ = false;
  Tensor kept_logits_;
  std::function<void(int64_t)> grads_final_;
  std::function<void(int64_t, int64_t)> params_needed_;
  Range embed_range_, head_range_;  // the embedding's; the final norm's and head's
  std::vector<Range> layer_ranges_;
  std::vector<Range> mlp_ranges_;  // each layer's MLP half: the top of its range, final before its attention's backward
  bool replicas_summed_ = false;  // the last backward did finish_gradients' sums already
  bool sp_ = false;               // sequence parallelism on (tp > 1)
  int64_t block_q_ = 128, block_k_ = 128;
  Recompute recompute_ = Recompute::None;
  DocumentRules docs_;
};

}  // namespace llamatron
