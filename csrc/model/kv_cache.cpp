// Generation with a KV cache: the prompt runs once through the model (prefill), then each new token
// alone (decode), its query attending to the cached keys and values of every earlier position.
// The ops are the training forward's (model.h), on the new rows only; RoPE rotates each row at its
// own position, and the decode attention (ops.h, attention_decode_fwd) needs no mask.
// Packed documents (set_documents) as in training: the prompt's documents go to the prefill's
// attention and RoPE; a decoded token attends to the cache from its document's start on, at its
// position in that document.
#include <algorithm>

#include "llamatron/errors.h"
#include "llamatron/model.h"
#include "llamatron/ops.h"
#include "model/weights.h"

namespace llamatron {

struct LlamaModel::CachedRows {
  std::vector<int64_t> rows;    // cache rows: one for a prefill, one per token for a decode
  std::vector<int32_t> tokens;  // a prompt (prefill) or one token per row (decode)
  bool prefill = false;
};

KvCache LlamaModel::make_kv_cache(int64_t batch, int64_t capacity) const {
  if (shard_.pp != 1 || shard_.tp != 1 || shard_.cp != 1)
    throw Error("generation with a KV cache runs the whole model in one process (pp = tp = cp = 1)");
  if (batch < 1 || capacity < 1 || capacity > cfg_.max_seq_len)
    throw Error("a KV cache needs at least one sequence and 1 to model.max_seq_len (" + std::to_string(cfg_.max_seq_len) + ") positions");
  KvCache c;
  c.batch = batch, c.capacity = capacity, c.length.assign(batch, 0), c.doc_start.assign(batch, 0);
  for (size_t l = 0; l < w_->layers.size(); ++l) {
    c.k.push_back(Tensor::empty({batch, capacity, kv_heads_, cfg_.head_dim()}, dtype_, device_));
    c.v.push_back(Tensor::empty({batch, capacity, kv_heads_, cfg_.head_dim()}, dtype_, device_));
  }
  return c;
}

std::vector<float> LlamaModel::prefill(KvCache& cache, int64_t row, const int32_t* tokens, int64_t n) {
  LT_CHECK(row >= 0 && row < cache.batch && cache.length[row] == 0, "prefill needs an empty cache row");
  if (n < 1 || n > cache.capacity)
    throw Error("a prompt of " + std::to_string(n) + " tokens does not fit the cache's " + std::to_string(cache.capacity) + " positions");
  return cached_forward(cache, {{row}, std::vector<int32_t>(tokens, tokens + n), true});
}

std::vector<float> LlamaModel::decode(KvCache& cache, const std::vector<int64_t>& rows, const std::vector<int32_t>& tokens) {
  LT_CHECK(rows.size() == tokens.size() && !rows.empty(), "decode takes one token per row");
  for (int64_t r : rows) {
    LT_CHECK(r >= 0 && r < cache.batch && cache.length[r] > 0, "decode continues a prefilled row");
    if (cache.length[r] >= cache.capacity) throw Error("the KV cache is full (" + std::to_string(cache.capacity) + " positions)");
  }
  return cached_forward(cache, {rows, tokens, false});
}

std::vector<float> LlamaModel::cached_forward(KvCache& cache, const CachedRows& in) {
  const int64_t N = static_cast<int64_t>(in.tokens.size()), C = cfg_.dim, H = heads_, KV = kv_heads_, D = cfg_.head_dim();
  const int64_t V = cfg_.vocab_size, seqs = static_cast<int64_t>(in.rows.size());
  const float eps = static_cast<float>(cfg_.norm_eps);
  for (int32_t t : in.tokens)
    if (t < 0 || t >= V) throw Error("token id " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  const auto make = [&](Shape shape, DType dtype) { return Tensor::empty(shape, dtype, device_); };
  Tensor ids = make({N}, DType::I32);
  ids.copy_from(Tensor::wrap(const_cast<int32_t*>(in.tokens.data()), {N}, DType::I32));
  Tensor x = make({N, C}, dtype_), mid = make({N, C}, dtype_), xn = make({N, C}, dtype_), rstd = make({N}, DType::F32);
  Tensor q = make({N, H * D}, dtype_), k = make({N, KV * D}, dtype_), v = make({N, KV * D}, dtype_), att = make({N, H * D}, dtype_);
  Tensor gate_up = make({N, 2 * ffn_}, dtype_), act = make({N, ffn_}, dtype_);
  Tensor lse = in.prefill ? make({H * N}, DType::F32) : Tensor();
  // The prompt's documents (prefill), as [1, N] tensors on the device.
  const Documents docs = in.prefill ? find_documents(in.tokens.data(), 1, N, N, docs_) : Documents{};
  const Tensor doc_start = per_position_tensor(docs.starts, 1, N, device_), positions = per_position_tensor(docs.positions, 1, N, device_);
  const int64_t row_elems = cache.capacity * KV * D;  // one sequence of one layer's cache
  ops::embedding_fwd(ids, w_->embed.w, x);
  for (size_t l = 0; l < w_->layers.size(); ++l) {
    const WeightsLayer& w = w_->layers[l];
    // mid = x + o(attention(rope(q), rope(k), v)), q, k, v from rmsnorm(x): as attention_block.
    ops::rmsnorm_fwd(x, w.attn_norm.w, eps, xn, rstd);
    ops::linear_fwd(xn, w.wq.w, q);
    ops::linear_fwd(xn, w.wk.w, k);
    ops::linear_fwd(xn, w.wv.w, v);
    if (in.prefill) {  // one sequence, positions 0 .. N - 1: causal attention as in training
      const int64_t base = in.rows[0] * row_elems;
      const Tensor q4 = q.view(0, {1, N, H, D}), k4 = k.view(0, {1, N, KV, D}), v4 = v.view(0, {1, N, KV, D});
      ops::rope_fwd(q4, rope_cos_, rope_sin_, 0, positions);
      ops::rope_fwd(k4, rope_cos_, rope_sin_, 0, positions);
      cache.k[l].view(base, {1, N, KV, D}).copy_from(k4);
      cache.v[l].view(base, {1, N, KV, D}).copy_from(v4);
      ops::attention_fwd(q4, k4, v4, att.view(0, {1, N, H, D}), lse, {doc_start}, block_q_, block_k_);
    } else {  // one token per sequence, at its own next position
      for (int64_t i = 0; i < N; ++i) {
        const int64_t pos = cache.length[in.rows[i]], base = in.rows[i] * row_elems;
        const int64_t start = cache.doc_start[in.rows[i]];
        const int64_t first_key = docs_.reset_attention_mask ? start : 0, rope_pos = docs_.reset_position_ids ? pos - start : pos;
        const Tensor qi = q.view(i * H * D, {1, 1, H, D}), ki = k.view(i * KV * D, {1, 1, KV, D});
        ops::rope_fwd(qi, rope_cos_, rope_sin_, rope_pos);
        ops::rope_fwd(ki, rope_cos_, rope_sin_, rope_pos);
        cache.k[l].view(base + pos * KV * D, {1, 1, KV, D}).copy_from(ki);
        cache.v[l].view(base + pos * KV * D, {1, 1, KV, D}).copy_from(v.view(i * KV * D, {1, 1, KV, D}));
        const int64_t keys = pos + 1 - first_key;
        ops::attention_decode_fwd(qi, cache.k[l].view(base + first_key * KV * D, {1, keys, KV, D}),
                                  cache.v[l].view(base + first_key * KV * D, {1, keys, KV, D}), att.view(i * H * D, {1, 1, H, D}));
      }
    }
    ops::linear_fwd(att, w.wo.w, mid);
    ops::add_inplace(mid, x);
    // x = mid + down(silu(gate(xn2)) * up(xn2)), xn2 = rmsnorm(mid): as mlp_block_up and the down projection.
    ops::rmsnorm_fwd(mid, w.mlp_norm.w, eps, xn, rstd);
    ops::linear_fwd(xn, w.wgate_up.w, gate_up);
    ops::swiglu_fwd(gate_up, act);
    ops::linear_fwd(act, w.wdown.w, x);
    ops::add_inplace(x, mid);
  }
  for (size_t i = 0; i < in.tokens.size(); ++i) {  // a new document starts after every eod
    const int64_t r = in.rows[in.prefill ? 0 : i];
    if (in.tokens[i] == docs_.eod_id) cache.doc_start[r] = cache.length[r] + (in.prefill ? static_cast<int64_t>(i) : 0) + 1;
  }
  for (int64_t r : in.rows) cache.length[r] += in.prefill ? N : 1;
  // The head on each sequence's last row only.
  const Tensor last = in.prefill ? x.view((N - 1) * C, {1, C}) : x;
  Tensor hn = make({seqs, C}, dtype_), hr = make({seqs}, DType::F32), logits = make({seqs, vocab_rows_}, dtype_);
  ops::rmsnorm_fwd(last, w_->final_norm.w, eps, hn, hr);
  ops::linear_fwd(hn, w_->head.w, logits);
  Tensor on_host = Tensor::empty({seqs, vocab_rows_}, dtype_), host = Tensor::empty({seqs, vocab_rows_}, DType::F32);
  on_host.copy_from(logits);  // device -> host keeps the dtype; then widened on the host
  host.copy_from(on_host);
  std::vector<float> out(static_cast<size_t>(seqs * V));
  for (int64_t s = 0; s < seqs; ++s) std::copy_n(host.data<float>() + s * vocab_rows_, V, out.begin() + s * V);
  return out;
}

}  // namespace llamatron
