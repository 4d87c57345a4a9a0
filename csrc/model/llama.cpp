#include "llamatron/model.h"
#include "model/weights.h"

#include <algorithm>
#include <cmath>

#include "llamatron/comm.h"
#include "llamatron/context_parallel.h"
#include "llamatron/errors.h"
#include "llamatron/memory.h"
#include "llamatron/ops.h"
#include "llamatron/random.h"
#include "llamatron/tensor_parallel.h"
#include "llamatron/trace.h"
#include "ops/cpu/cpu_ops.h"

namespace llamatron {

Recompute parse_recompute(const std::string& name) {
  if (name == "none") return Recompute::None;
  if (name == "selective") return Recompute::Selective;
  if (name == "full") return Recompute::Full;
  throw Error("train.recompute must be none, selective or full, got '" + name + "'");
}


// One layer's forward tensors, in the order they are made.
struct LayerTensors {
  Tensor in, rstd1, xn1, q, k, v, att, lse, mid, rstd2, xn2, gate_up, act;
};

// One micro-batch in flight: what its backward needs, per layer of one chunk of this stage (all its
// layers with plain 1F1B; the chunks of interleaved 1F1B have equal layers, so a slot serves any).
// Buffers are kept between steps and re-made if (B, T) changes. With recomputation some of a
// layer's tensors are not kept: they alias the scratch's `work` layer and are recomputed in the
// backward. The head's tensors come from their own pool (HeadBuffers) while the slot holds the
// last chunk of the last stage: fewer micro-batches of that chunk are in flight than slots.
struct LlamaModel::Activations {
  using Layer = LayerTensors;
  int64_t batch = 0, seq = 0;
  Tensor ids, targets;         // [B*T] int32
  Tensor doc_start, positions; // [B, T] int32 packed documents (documents.h) or CP's global positions; undefined when off
  int64_t window = 0;          // the whole sequence (seq: this rank's part of it, T / cp)
  std::vector<Layer> layers;
  Tensor out;                  // the chunk's output (residual stream)
  Tensor rstd_f, xn_f;         // final norm (bound from the head pool)
  Tensor logits;               // [B*T, V] (bound from the head pool); becomes dlogits in place
};

// The head's tensors of one micro-batch in flight, bound to the slot that holds it (-1: free).
struct LlamaModel::HeadBuffers {
  int slot = -1;
  int64_t batch = 0, seq = 0;
  Tensor rstd_f, xn_f, logits;
};

// Backward scratch, shared by every layer and micro-batch (one backward runs at a time). dres is
// the residual-stream gradient: it arrives from the next stage and leaves as this stage's input_grad.
// On a pipeline stage the residual gradient is double-buffered (dres_sent): the input_grad of one
// backward can still be on its way to the previous stage while the next backward's arrives.
// With sequence parallelism dres is this rank's positions ([B*T/tp, C]) and dxn the whole
// sequence's partial sums, reduce-scattered into dxn_local; seq_full holds whole sequences
// gathered from chunks (0: gradients, and the forward's partial sums; 1: normed inputs), and
// seq_stage the same in the collectives' chunk order (B > 1).
struct LlamaModel::Scratch {
  int64_t batch = 0, seq = 0;  // the micro-batch shape it was made for (attention tensors are [B, T, ...])
  Tensor dres, dxn, datt, dq, dk, dv, dact, dgate_up;
  Tensor dres_sent;  // pp > 1: the last backward's input_grad
  Tensor dxn_local, seq_full[2], seq_stage[2];  // sequence parallelism
  LayerTensors work;  // the tensors recomputation does not keep, shared by all layers
};

LlamaModel::LlamaModel(const ModelConfig& cfg, DType dtype, Device device, const ModelShard& shard)
    : cfg_(cfg), shard_(shard), dtype_(dtype), device_(device) {
  cfg_.validate();
  LT_CHECK(shard.tp == 1 || shard.tp_group != nullptr, "a tensor-parallel model needs its TP group");
  sp_ = shard.sequence_parallel && shard.tp > 1;
  if (shard.pp > 1 && cfg_.tie_embeddings)
    throw Error("model.tie_embeddings with parallel.pipeline_parallel > 1 is not supported yet (the embedding and the head "
                "live on different stages): set model.tie_embeddings=false or parallel.pipeline_parallel=1");
  const int64_t tp = shard.tp;
  heads_ = cfg_.n_heads / tp;
  kv_heads_ = cfg_.n_kv_heads % tp == 0 ? cfg_.n_kv_heads / tp : 1;
  ffn_ = cfg_.resolved_ffn_dim() / tp;
  vocab_rows_ = padded_vocab(cfg_.vocab_size, tp) / tp;
  vocab_start_ = shard.tp_rank * vocab_rows_;
  vocab_valid_ = std::clamp<int64_t>(cfg_.vocab_size - vocab_start_, 0, vocab_rows_);
  if (tp > 1 && cfg_.n_kv_heads % tp != 0)  // replicated KV heads: their holders sum gradients
    kv_replicas_ = shard.tp_group->split(static_cast<int>(shard.tp_rank / (tp / cfg_.n_kv_heads)), shard.tp_rank);
  params_ = std::make_unique<ParamStore>(llama_param_specs(cfg_, shard), dtype, device, shard.zero_shards);
  w_ = std::make_unique<Weights>();
  scratch_ = std::make_unique<Scratch>();
  auto p = [&](const std::string& n) { return Param{params_->param(n), params_->grad(n)}; };
  const int64_t F2 = 2 * ffn_;
  if (shard.first_stage()) w_->embed = p("model.embed_tokens.weight");
  if (shard.last_stage()) {
    w_->final_norm = p("model.norm.weight");
    w_->head = cfg_.tie_embeddings ? w_->embed : p("lm_head.weight");
  }
  layer_ids_ = shard.layer_ids(cfg_);
  chunk_begin_ = {0};
  for (int c = 0; c < shard.chunks; ++c) chunk_begin_.push_back(chunk_begin_.back() + shard.last_layer(cfg_, c) - shard.first_layer(cfg_, c));
  for (int c = 1; c < shard.chunks; ++c)  // a slot of activations serves any chunk
    LT_CHECK(chunk_begin_[c + 1] - chunk_begin_[c] == chunk_begin_[1], "interleaved chunks have equal layers");
  for (const int64_t l : layer_ids_) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    w_->layers.push_back({p(pre + "input_layernorm.weight"), p(pre + "self_attn.q_proj.weight"),
                          p(pre + "self_attn.k_proj.weight"), p(pre + "self_attn.v_proj.weight"),
                          p(pre + "self_attn.o_proj.weight"), p(pre + "post_attention_layernorm.weight"),
                          Param{params_->param_span(pre + "mlp.gate_proj.weight", {F2, cfg_.dim}),
                                params_->grad_span(pre + "mlp.gate_proj.weight", {F2, cfg_.dim})},
                          p(pre + "mlp.down_proj.weight")});
  }
  if (shard.first_stage()) embed_range_ = range_of({"model.embed_tokens.weight"});
  if (shard.last_stage()) head_range_ = range_of({"model.norm.weight", cfg_.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"});
  for (const int64_t l : layer_ids_) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    std::vector<std::string> names;
    for (const ParamSpec& sp : params_->specs())
      if (sp.name.rfind(pre, 0) == 0) names.push_back(sp.name);
    layer_ranges_.push_back(range_of(names));
    mlp_ranges_.push_back(range_of({pre + "post_attention_layernorm.weight", pre + "mlp.gate_proj.weight", pre + "mlp.up_proj.weight",
                                    pre + "mlp.down_proj.weight"}));
    LT_CHECK(mlp_ranges_.back().hi == layer_ranges_.back().hi, "a layer's MLP parameters must end its flat range");
  }
  const int64_t half = cfg_.head_dim() / 2;
  Tensor cos = Tensor::empty({cfg_.max_seq_len, half}, DType::F32), sin = Tensor::empty({cfg_.max_seq_len, half}, DType::F32);
  cpu::rope_table(cos.data<float>(), sin.data<float>(), cfg_.max_seq_len, cfg_.head_dim(), cfg_.rope_theta);
  MemoryScope scope(MemCategory::Workspace);
  rope_cos_ = Tensor::empty(cos.shape(), DType::F32, device_);
  rope_sin_ = Tensor::empty(sin.shape(), DType::F32, device_);
  rope_cos_.copy_from(cos);
  rope_sin_.copy_from(sin);
}

LlamaModel::~LlamaModel() = default;

// Every rank draws the whole model in the same order (the single-process stream) and keeps its
// slices, so any layout starts from the same weights.
void LlamaModel::init_weights(uint64_t seed) {
  Rng rng(mix_seed(seed, 1));
  const double out_std = 0.02 / std::sqrt(2.0 * cfg_.n_layers);
  for (const ParamSpec& g : llama_param_specs(cfg_)) {
    Tensor global = Tensor::empty(g.shape, DType::F32);  // drawn on the host, then copied wherever the model lives
    float* x = global.data<float>();
    const bool residual_out = g.name.find("o_proj") != std::string::npos || g.name.find("down_proj") != std::string::npos;
    const double std = residual_out ? out_std : 0.02;
    for (int64_t i = 0; i < global.numel(); ++i) x[i] = g.is_norm ? 1.0f : static_cast<float>(std * rng.normal());
    if (!params_->has(g.name)) continue;
    const ParamSpec& s = params_->spec(g.name);
    Tensor local = Tensor::empty(s.shape, DType::F32);
    slice_global(s, x, local.data<float>());
    params_->master(s.name).copy_from(local);
  }
  params_->sync_params_from_master();
}

LlamaModel::Range LlamaModel::range_of(const std::vector<std::string>& names) const {
  Range r{params_->numel(), 0};
  for (const std::string& n : names) {
    const ParamSpec& s = params_->spec(n);
    r.lo = std::min(r.lo, s.offset), r.hi = std::max(r.hi, s.offset + s.numel());
  }
  return r;
}

SeqGather LlamaModel::whole_sequence(const Tensor& local, int buf) const {
  if (!sp_) return SeqGather{Handle(), Tensor(), local};
  const Scratch& g = *scratch_;
  return seq_all_gather(*shard_.tp_group, local, g.seq_full[buf], g.seq_stage[buf], g.batch);
}

const Tensor& LlamaModel::partial_for(const Tensor& out) const { return sp_ ? scratch_->seq_full[0] : out; }

Handle LlamaModel::sum_partial(const Tensor& partial, const Tensor& out) const {
  if (sp_) return seq_reduce_scatter(*shard_.tp_group, partial, out, scratch_->seq_stage[0], scratch_->batch);
  if (shard_.tp == 1) return Handle();
  return shard_.tp_group->all_reduce_async(out.raw(), out.numel(), out.dtype(), ReduceOp::Sum);
}

void LlamaModel::sum_norm_over_tp(const Tensor& grad) const {
  if (sp_) shard_.tp_group->all_reduce(grad.raw(), grad.numel(), DType::F32, ReduceOp::Sum);
}

void LlamaModel::reduce_kv_replicas(size_t l) const {
  if (!kv_replicas_ || kv_replicas_->size() == 1) return;
  const auto& w = w_->layers[l];
  for (const Tensor& g : {w.wk.g, w.wv.g}) kv_replicas_->all_reduce(g.raw(), g.numel(), DType::F32, ReduceOp::Sum);
}

void LlamaModel::finish_gradients() {
  if (!replicas_summed_) {  // a last_micro_batch backward sums them part by part, as each becomes final
    if (shard_.last_stage()) sum_norm_over_tp(w_->final_norm.g);
    for (size_t l = 0; l < w_->layers.size(); ++l) {
      sum_norm_over_tp(w_->layers[l].mlp_norm.g);
      sum_norm_over_tp(w_->layers[l].attn_norm.g);
      reduce_kv_replicas(l);
    }
  }
  replicas_summed_ = false;
}

double LlamaModel::forward_backward(const int32_t* tokens, int64_t batch, int64_t seq, float loss_scale) {
  LT_CHECK(shard_.pp == 1, "forward_backward is the whole model; a pipeline stage runs forward_stage/backward_stage");
  const double loss = forward_stage(0, tokens, batch, seq, loss_scale);
  backward_stage(0);
  return loss;
}

double LlamaModel::forward_loss(const int32_t* tokens, int64_t batch, int64_t seq) {
  LT_CHECK(shard_.pp == 1, "forward_loss is the whole model");
  return forward_stage(0, tokens, batch, seq, 0.0f);  // scale 0: the gradient it writes is zero and unused
}

void LlamaModel::set_recompute(Recompute mode) {
  recompute_ = mode;
  slots_.clear();  // re-made on next use with the new split of kept and recomputed tensors
  head_pool_.clear();
  scratch_->batch = scratch_->seq = 0;
}

LlamaModel::Activations& LlamaModel::slot(int i, int64_t B, int64_t T) {
  if (static_cast<int>(slots_.size()) <= i) slots_.resize(i + 1);
  Activations& a = slots_[i];
  if (a.batch == B && a.seq == T) return a;
  // (Re)allocate for this micro-batch shape, at this rank's widths: query/KV heads, FFN and
  // vocabulary rows (all of them when tp == 1), and this stage's layers. With sequence parallelism
  // the residual stream and the norms hold R = B*T/tp rows (this rank's positions), the rest B*T.
  const int64_t C = cfg_.dim, H = heads_, KV = kv_heads_, D = cfg_.head_dim(), F = ffn_, N = B * T;
  LT_CHECK(!sp_ || T % shard_.tp == 0, "sequence parallelism splits the sequence into tp equal chunks");
  const int64_t R = sp_ ? N / shard_.tp : N;
  const DType dt = dtype_;
  auto make = [&](const Shape& s, DType t) { return Tensor::empty(s, t, device_); };
  // A layer's tensors: its input, the cheap-to-recompute ones (norm outputs, SwiGLU product), the rest.
  const auto layer = [&](bool input, bool cheap, bool rest) {
    LayerTensors x;
    if (input) x.in = make({R, C}, dt);
    if (cheap) x.xn1 = make({R, C}, dt), x.xn2 = make({R, C}, dt), x.act = make({N, F}, dt);
    if (rest) {
      x.rstd1 = make({R}, DType::F32), x.q = make({B, T, H, D}, dt), x.k = make({B, T, KV, D}, dt);
      x.v = make({B, T, KV, D}, dt), x.att = make({B, T, H, D}, dt), x.lse = make({B, H, T}, DType::F32);
      x.mid = make({R, C}, dt), x.rstd2 = make({R}, DType::F32), x.gate_up = make({N, 2 * F}, dt);
    }
    return x;
  };
  const bool keep_cheap = recompute_ == Recompute::None, keep_rest = recompute_ != Recompute::Full;
  Scratch& g = *scratch_;
  if (g.batch != B || g.seq != T) {
    MemoryScope scope(MemCategory::Workspace);
    g.batch = B, g.seq = T;
    g.dres = make({R, C}, dt), g.dxn = make({N, C}, dt), g.datt = make({N, H * D}, dt);
    g.dres_sent = shard_.pp > 1 ? make({R, C}, dt) : Tensor();
    if (sp_) {
      g.dxn_local = make({R, C}, dt);
      for (int b = 0; b < 2; ++b) g.seq_full[b] = make({N, C}, dt), g.seq_stage[b] = B > 1 ? make({N, C}, dt) : Tensor();
    }
    g.dq = make({B, T, H, D}, dt), g.dk = make({B, T, KV, D}, dt), g.dv = make({B, T, KV, D}, dt);
    g.dact = make({N, F}, dt), g.dgate_up = make({N, 2 * F}, dt);
    g.work = layer(false, !keep_cheap, !keep_rest);
  }
  MemoryScope scope(MemCategory::Activations);
  a = Activations{};
  a.batch = B, a.seq = T;
  a.ids = make({N}, DType::I32), a.targets = make({N}, DType::I32);
  for (int64_t l = 0; l < chunk_begin_[1]; ++l) {  // a chunk's layers (every chunk has as many)
    LayerTensors x = layer(true, keep_cheap, keep_rest);
    const LayerTensors& w = g.work;
    if (!keep_cheap) x.xn1 = w.xn1, x.xn2 = w.xn2, x.act = w.act;
    if (!keep_rest) {
      x.rstd1 = w.rstd1, x.q = w.q, x.k = w.k, x.v = w.v, x.att = w.att, x.lse = w.lse;
      x.mid = w.mid, x.rstd2 = w.rstd2, x.gate_up = w.gate_up;
    }
    a.layers.push_back(x);
  }
  a.out = make({R, C}, dt);
  return a;
}

void LlamaModel::bind_head(int i, Activations& a) {
  HeadBuffers* h = nullptr;
  for (HeadBuffers& free : head_pool_)
    if (free.slot < 0) h = &free;
  if (!h) h = &head_pool_.emplace_back();
  if (h->batch != a.batch || h->seq != a.seq) {  // new, or made for another micro-batch shape
    MemoryScope scope(MemCategory::Activations);
    const int64_t N = a.batch * a.seq, R = sp_ ? N / shard_.tp : N;
    h->batch = a.batch, h->seq = a.seq;
    h->rstd_f = Tensor::empty({R}, DType::F32, device_), h->xn_f = Tensor::empty({R, cfg_.dim}, dtype_, device_);
    h->logits = Tensor::empty({N, vocab_rows_}, dtype_, device_);
  }
  h->slot = i, a.rstd_f = h->rstd_f, a.xn_f = h->xn_f, a.logits = h->logits;
}

void LlamaModel::release_head(int i, Activations& a) {
  for (HeadBuffers& h : head_pool_)
    if (h.slot == i) h.slot = -1;
  a.rstd_f = a.xn_f = a.logits = Tensor();
}

ContextSplit LlamaModel::context_split(const Activations& a) const { return ContextSplit{shard_.cp, shard_.cp_rank, a.window}; }

const Tensor& LlamaModel::stage_input(int i, int64_t B, int64_t T) {
  Activations& a = slot(i, B, T / shard_.cp);  // this rank's positions
  return a.layers.empty() ? a.out : a.layers[0].in;
}

const Tensor& LlamaModel::stage_output(int i) const { return slots_.at(i).out; }

const Tensor& LlamaModel::input_grad() const { return scratch_->dres_sent.defined() ? scratch_->dres_sent : scratch_->dres; }

const Tensor& LlamaModel::output_grad() const { return scratch_->dres; }

// mid = in + o(attention(rope(q), rope(k), v)), q/k/v from rmsnorm(in) (the whole sequence: with
// sequence parallelism the norm runs on this rank's positions and is gathered).
void LlamaModel::attention_block(const LayerTensors& x, const WeightsLayer& w, const Activations& a) const {
  ops::rmsnorm_fwd(x.in, w.attn_norm.w, static_cast<float>(cfg_.norm_eps), x.xn1, x.rstd1);
  const Tensor& xn1 = whole_sequence(x.xn1, 1).wait();
  ops::linear_fwd(xn1, w.wq.w, x.q);
  ops::linear_fwd(xn1, w.wk.w, x.k);
  ops::linear_fwd(xn1, w.wv.w, x.v);
  ops::rope_fwd(x.q, rope_cos_, rope_sin_, 0, a.positions);
  ops::rope_fwd(x.k, rope_cos_, rope_sin_, 0, a.positions);
  if (shard_.cp > 1)  // this rank's positions against every rank's keys, K/V passed around the CP ring
    context_parallel_attention_fwd(*shard_.cp_group, context_split(a), x.q, x.k, x.v, x.att, x.lse, a.doc_start, block_q_, block_k_);
  else
    ops::attention_fwd(x.q, x.k, x.v, x.att, x.lse, {a.doc_start}, block_q_, block_k_);
  ops::linear_fwd(x.att, w.wo.w, partial_for(x.mid));
  sum_partial(partial_for(x.mid), x.mid).wait();  // row-parallel o: the heads' partial sums
  ops::add_inplace(x.mid, x.in);
}

// The MLP up to its down projection: act = silu(gate(xn2)) * up(xn2), gate and up as one GEMM.
void LlamaModel::mlp_block_up(const LayerTensors& x, const WeightsLayer& w) const {
  ops::rmsnorm_fwd(x.mid, w.mlp_norm.w, static_cast<float>(cfg_.norm_eps), x.xn2, x.rstd2);
  ops::linear_fwd(whole_sequence(x.xn2, 1).wait(), w.wgate_up.w, x.gate_up);
  ops::swiglu_fwd(x.gate_up, x.act);
}

double LlamaModel::forward_stage(int i, const int32_t* tokens, int64_t B, int64_t T, float loss_scale, int chunk) {
  if (T > cfg_.max_seq_len)
    throw Error("sequence length " + std::to_string(T) + " exceeds model.max_seq_len " + std::to_string(cfg_.max_seq_len));
  LT_CHECK(shard_.cp == 1 || T % (2 * shard_.cp) == 0, "context parallelism cuts the sequence into 2 cp equal chunks");
  // This rank's positions: all T, or with context parallelism its two chunks (split.global(p)).
  const int64_t V = cfg_.vocab_size, Tl = T / shard_.cp, N = B * Tl;
  Activations& a = slot(i, B, Tl);
  const ContextSplit split{shard_.cp, shard_.cp_rank, T};
  a.window = T;
  const Tensor& x0 = stage_input(i, B, T);  // filled by the previous stage unless this is the first
  release_head(i, a);  // a new micro-batch: the slot's last one is done (or was a forward only)
  if (holds_head(chunk)) bind_head(i, a);
  if (holds_embedding(chunk) || holds_head(chunk)) {
    Tensor ids_host = Tensor::empty({N}, DType::I32), targets_host = Tensor::empty({N}, DType::I32);
    int32_t* ids = ids_host.data<int32_t>();
    int32_t* tgt = targets_host.data<int32_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < Tl; ++p) {
        const int64_t t = split.global(p);
        const int32_t x = tokens[b * (T + 1) + t], y = tokens[b * (T + 1) + t + 1];
        if (x < 0 || x >= V) throw Error("token id " + std::to_string(x) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
        if (y != kIgnoreIndex && (y < 0 || y >= V))
          throw Error("target id " + std::to_string(y) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
        // A token another vocab-parallel rank owns becomes -1 (a zero row).
        ids[b * Tl + p] = x >= vocab_start_ && x < vocab_start_ + vocab_valid_ ? static_cast<int32_t>(x - vocab_start_) : -1;
        tgt[b * Tl + p] = docs_.counts(tokens + b * (T + 1), t) ? y : kIgnoreIndex;  // eod_mask_loss
      }
    a.ids.copy_from(ids_host);
    a.targets.copy_from(targets_host);
  }
  // The micro-batch's documents, once for all its layers (every stage has the tokens).
  // With context parallelism, this rank's entries (document starts and RoPE positions are global).
  Documents docs = find_documents(tokens, B, T, T + 1, docs_);
  if (shard_.cp > 1) {
    if (!docs.starts.empty()) docs.starts = local_part(split, docs.starts.data(), B, T);
    docs.positions = docs.positions.empty() ? global_positions(split, B) : local_part(split, docs.positions.data(), B, T);
  }
  a.doc_start = per_position_tensor(docs.starts, B, Tl, device_);
  a.positions = per_position_tensor(docs.positions, B, Tl, device_);
  const float eps = static_cast<float>(cfg_.norm_eps);
  if (holds_embedding(chunk)) {
    need_params(embed_range_);
    const trace::Span span("forward", "forward embedding");
    ops::embedding_fwd(a.ids, w_->embed.w, partial_for(x0));
    sum_partial(partial_for(x0), x0).wait();  // vocab-parallel: each rank's rows contribute
  }
  const int64_t begin = chunk_begin_[chunk], end = chunk_begin_[chunk + 1];
  for (int64_t l = begin; l < end; ++l) {  // local layer l is a.layers[l - begin]
    const LayerTensors& x = a.layers[l - begin];
    const auto& w = w_->layers[l];
    const Tensor& out = l + 1 < end ? a.layers[l + 1 - begin].in : a.out;
    need_params(layer_ranges_[l]);
    const int64_t layer = layer_ids_[l];
    const trace::Span span("forward", "forward L" + std::to_string(layer), {trace::arg("layer", static_cast<double>(layer))});
    attention_block(x, w, a);
    mlp_block_up(x, w);
    ops::linear_fwd(x.act, w.wdown.w, partial_for(out));
    sum_partial(partial_for(out), out).wait();  // row-parallel down
    ops::add_inplace(out, x.mid);
  }
  if (!holds_head(chunk)) return 0.0;  // a.out goes to the next stage
  need_params(head_range_);
  const trace::Span span("forward", "forward head and loss");
  ops::rmsnorm_fwd(a.out, w_->final_norm.w, eps, a.xn_f, a.rstd_f);
  ops::linear_fwd(whole_sequence(a.xn_f, 1).wait(), w_->head.w, a.logits);
  if (keep_logits_) {
    kept_logits_ = Tensor::empty(a.logits.shape(), a.logits.dtype());  // on the host
    kept_logits_.copy_from(a.logits);
  }
  // Loss and dlogits in one pass, in place: the logits are not needed after this.
  if (shard_.tp > 1)
    return vocab_parallel_cross_entropy(*shard_.tp_group, a.logits, a.targets, vocab_start_, vocab_valid_, loss_scale, kIgnoreIndex);
  return ops::cross_entropy_fwd_bwd(a.logits, a.targets, a.logits, loss_scale, kIgnoreIndex);
}

void LlamaModel::backward_stage(int i, bool last_micro_batch, int chunk) {
  Activations& a = slots_.at(i);
  Scratch& g = *scratch_;
  // On the last micro-batch, each part's gradients are final once its backward is done.
  const auto final_from = [&](int64_t offset) {
    if (last_micro_batch && grads_final_) grads_final_(offset);
  };
  // The sums over TP of an input gradient (dxn, the whole sequence's partial sums) run under the
  // weight gradient that follows them; with sequence parallelism they land in this rank's rows.
  const Tensor& dxn = sp_ ? g.dxn_local : g.dxn;
  if (holds_head(chunk)) {  // head and final norm; otherwise g.dres holds the next stage's input_grad
    const trace::Span span("backward", "backward head");
    SeqGather xn_f = whole_sequence(a.xn_f, 1);
    ops::linear_bwd_data(a.logits, w_->head.w, g.dxn, false);
    Handle summed = sum_partial(g.dxn, dxn);  // vocab-parallel head: each rank's vocabulary rows contribute
    ops::linear_bwd_weight(a.logits, xn_f.wait(), w_->head.g);
    summed.wait();
    ops::rmsnorm_bwd(dxn, a.out, w_->final_norm.w, a.rstd_f, g.dres, w_->final_norm.g, false);
    if (last_micro_batch) sum_norm_over_tp(w_->final_norm.g);
    if (!cfg_.tie_embeddings) final_from(head_range_.lo);  // a tied head's gradient is the embedding's: final last
  }
  // g.dres now holds d(loss)/d(residual stream) and flows down through the layers.
  const float eps = static_cast<float>(cfg_.norm_eps);
  const int64_t begin = chunk_begin_[chunk];
  for (int64_t l = chunk_begin_[chunk + 1] - 1; l >= begin; --l) {
    const LayerTensors& x = a.layers[l - begin];
    const auto& w = w_->layers[l];
    const int64_t layer = layer_ids_[l];
    const trace::Span span("backward", "backward L" + std::to_string(layer), {trace::arg("layer", static_cast<double>(layer))});
    // Recompute what the forward did not keep, with the same ops on the same inputs: bit-identical.
    if (recompute_ == Recompute::Full) {
      attention_block(x, w, a);
      mlp_block_up(x, w);
    } else if (recompute_ == Recompute::Selective) {
      ops::rmsnorm_fwd(x.mid, w.mlp_norm.w, eps, x.xn2, x.rstd2);
      ops::swiglu_fwd(x.gate_up, x.act);
    }
    // MLP block (with sequence parallelism: the residual gradient and xn2 gathered, xn2 under the
    // down projection's backward)
    SeqGather dy = whole_sequence(g.dres, 0), xn2 = whole_sequence(x.xn2, 1);
    const Tensor& dres_mlp = dy.wait();
    ops::linear_bwd_data(dres_mlp, w.wdown.w, g.dact, false);
    ops::linear_bwd_weight(dres_mlp, x.act, w.wdown.g);
    ops::swiglu_bwd(g.dact, x.gate_up, g.dgate_up);
    ops::linear_bwd_data(g.dgate_up, w.wgate_up.w, g.dxn, false);
    Handle mlp_summed = sum_partial(g.dxn, dxn);  // column-parallel gate/up: the conjugate sum
    ops::linear_bwd_weight(g.dgate_up, xn2.wait(), w.wgate_up.g);
    mlp_summed.wait();
    ops::rmsnorm_bwd(dxn, x.mid, w.mlp_norm.w, x.rstd2, g.dres, w.mlp_norm.g, true);
    if (last_micro_batch) sum_norm_over_tp(w.mlp_norm.g);
    final_from(mlp_ranges_[l].lo);  // its buckets communicate under the attention's backward
    // attention block
    if (recompute_ == Recompute::Selective) ops::rmsnorm_fwd(x.in, w.attn_norm.w, eps, x.xn1, x.rstd1);
    SeqGather dz = whole_sequence(g.dres, 0), xn1 = whole_sequence(x.xn1, 1);
    const Tensor& dres_att = dz.wait();
    ops::linear_bwd_data(dres_att, w.wo.w, g.datt, false);
    ops::linear_bwd_weight(dres_att, x.att, w.wo.g);
    Tensor datt4 = g.datt.reshape(x.att.shape());
    if (shard_.cp > 1)
      context_parallel_attention_bwd(*shard_.cp_group, context_split(a), x.q, x.k, x.v, x.att, x.lse, datt4, g.dq, g.dk, g.dv, a.doc_start,
                                     block_q_, block_k_);
    else
      ops::attention_bwd(x.q, x.k, x.v, x.att, x.lse, datt4, g.dq, g.dk, g.dv, {a.doc_start}, block_q_, block_k_);
    ops::rope_bwd(g.dq, rope_cos_, rope_sin_, 0, a.positions);
    ops::rope_bwd(g.dk, rope_cos_, rope_sin_, 0, a.positions);
    ops::linear_bwd_data(g.dq, w.wq.w, g.dxn, false);
    ops::linear_bwd_data(g.dk, w.wk.w, g.dxn, true);
    ops::linear_bwd_data(g.dv, w.wv.w, g.dxn, true);
    Handle att_summed = sum_partial(g.dxn, dxn);  // column-parallel q, k, v
    const Tensor& xn1_all = xn1.wait();
    ops::linear_bwd_weight(g.dq, xn1_all, w.wq.g);
    ops::linear_bwd_weight(g.dk, xn1_all, w.wk.g);
    ops::linear_bwd_weight(g.dv, xn1_all, w.wv.g);
    att_summed.wait();
    ops::rmsnorm_bwd(dxn, x.in, w.attn_norm.w, x.rstd1, g.dres, w.attn_norm.g, true);
    if (last_micro_batch) sum_norm_over_tp(w.attn_norm.g), reduce_kv_replicas(static_cast<size_t>(l));
    final_from(layer_ranges_[l].lo);
  }
  if (chunk == 0) replicas_summed_ = last_micro_batch;  // chunk 0's is the step's final backward on this stage
  if (holds_embedding(chunk)) {
    const trace::Span span("backward", "backward embedding");
    ops::embedding_bwd(a.ids, whole_sequence(g.dres, 0).wait(), w_->embed.g);  // else g.dres is input_grad()
  }
  final_from(chunk == 0 ? 0 : layer_ranges_[begin].lo);  // everything of this chunk (and of the chunks after it)
  if (holds_head(chunk)) release_head(i, a);
  if (g.dres_sent.defined()) std::swap(g.dres, g.dres_sent);  // the next backward's gradient arrives in the other buffer
}

}  // namespace llamatron
