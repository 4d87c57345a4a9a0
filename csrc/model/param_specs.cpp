// Which weights a (pipeline stage, tensor-parallel rank) holds, and where each sits in its global
// tensor: the one place that knows how the model is split (no dependencies beyond the config, so
// the checkpoint reader and its fuzz target use it too).
#include "llamatron/model.h"
#include "llamatron/tensor_parallel.h"

namespace llamatron {

int64_t padded_vocab(int64_t vocab, int64_t tp) {
  if (tp == 1) return vocab;
  const int64_t multiple = 128 * tp;
  return (vocab + multiple - 1) / multiple * multiple;
}

std::vector<ParamSpec> llama_param_specs(const ModelConfig& c, const ModelShard& sh) {
  const int64_t C = c.dim, D = c.head_dim(), F = c.resolved_ffn_dim(), tp = sh.tp, r = sh.tp_rank;
  const int64_t Vl = padded_vocab(c.vocab_size, tp) / tp, Hl = c.n_heads / tp, Fl = F / tp;
  const bool kv_split = c.n_kv_heads % tp == 0;  // else replicated: tp / n_kv_heads ranks share a head
  const int64_t KVl = kv_split ? c.n_kv_heads / tp : 1, kv_first = kv_split ? r * KVl : r / (tp / c.n_kv_heads);
  const bool kv_counted = kv_split || r % (tp / c.n_kv_heads) == 0;
  // A whole (replicated) tensor, or a slice of `rows` rows / `cols` columns from `offset`.
  const auto whole = [&](const std::string& n, const Shape& g, bool norm, bool emb) {
    return ParamSpec{n, g, norm, emb, false, !norm || r == 0, g};
  };
  const auto rows = [&](const std::string& n, const Shape& g, int64_t count, int64_t offset, bool emb = false, bool counted = true) {
    return ParamSpec{n, {count, g[1]}, false, emb, false, counted, g, 0, offset};
  };
  const auto cols = [&](const std::string& n, const Shape& g, int64_t count, int64_t offset) {
    return ParamSpec{n, {g[0], count}, false, false, false, true, g, 1, offset};
  };
  std::vector<ParamSpec> s;
  if (sh.first_stage()) s.push_back(rows("model.embed_tokens.weight", {c.vocab_size, C}, Vl, r * Vl, true));
  for (const int64_t l : sh.layer_ids(c)) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    s.push_back(whole(p + "input_layernorm.weight", {C}, true, false));
    s.push_back(rows(p + "self_attn.q_proj.weight", {c.n_heads * D, C}, Hl * D, r * Hl * D));
    s.push_back(rows(p + "self_attn.k_proj.weight", {c.n_kv_heads * D, C}, KVl * D, kv_first * D, false, kv_counted));
    s.push_back(rows(p + "self_attn.v_proj.weight", {c.n_kv_heads * D, C}, KVl * D, kv_first * D, false, kv_counted));
    s.push_back(cols(p + "self_attn.o_proj.weight", {C, c.n_heads * D}, Hl * D, r * Hl * D));
    s.push_back(whole(p + "post_attention_layernorm.weight", {C}, true, false));
    // gate and up are packed back to back: together they are one [2F, C] matrix, one GEMM.
    s.push_back(rows(p + "mlp.gate_proj.weight", {F, C}, Fl, r * Fl));
    s.back().packed_with_next = true;
    s.push_back(rows(p + "mlp.up_proj.weight", {F, C}, Fl, r * Fl));
    s.push_back(cols(p + "mlp.down_proj.weight", {C, F}, Fl, r * Fl));
  }
  if (sh.last_stage()) {
    s.push_back(whole("model.norm.weight", {C}, true, false));
    if (!c.tie_embeddings) s.push_back(rows("lm_head.weight", {c.vocab_size, C}, Vl, r * Vl, true));
  }
  return s;
}

}  // namespace llamatron
