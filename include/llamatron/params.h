// Parameters, their fp32 master copy and their fp32 gradients live in flat buffers; each
// parameter is a view. ZeRO-1 sharding, fused AdamW, grad norms and checkpoints are then single
// passes over ranges of one buffer (ARCHITECTURE.md, principle 6).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "llamatron/tensor.h"

namespace llamatron {

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  Shape shape;
  bool is_norm = false;       // RMSNorm weights: never weight-decayed
  bool is_embedding = false;  // embedding / LM head: decayed only if configured
  bool packed_with_next = false;  // the next parameter follows with no padding (fused GEMMs)
  bool counted_in_norm = true;  // false on all but one holder of a replicated parameter (TP)
  // Where this (local) tensor sits in the global one: rows (split_dim 0) or columns (1) from
  // split_offset, or the whole tensor (-1). Global rows past global_shape[0] are vocab padding.
  Shape global_shape;
  int split_dim = -1;
  int64_t split_offset = 0;
  int64_t offset = 0;         // elements into the flat buffers (filled by ParamStore)
  int64_t numel() const { return shape_numel(shape); }
};

// This (local) parameter's piece of its global tensor (host, fp32): its rows or columns; rows past
// the global tensor (vocab padding) are zero.
void slice_global(const ParamSpec& s, const float* global, float* local);

class ParamStore {
 public:
  // dtype: storage of the parameters the model computes with. With F32 the master copy *is* the
  // parameter buffer (exact mode); with BF16 the master is a separate fp32 buffer.
  // The flat buffers are padded to a multiple of `shards` * 64 elements: ZeRO-1's equal shards.
  ParamStore(std::vector<ParamSpec> specs, DType dtype, Device device = Device::CPU, int64_t shards = 1);
  // The flat buffers' length for these specs: each tensor padded to 64 elements (unless packed with
  // the next), the whole to `shards` x 64.
  static int64_t padded_numel(std::vector<ParamSpec>& specs, int64_t shards);

  const std::vector<ParamSpec>& specs() const { return specs_; }
  const ParamSpec& spec(const std::string& name) const;
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int64_t numel() const { return numel_; }  // including alignment padding

  Tensor param(const std::string& name) const { return view(params_, name); }
  Tensor master(const std::string& name) const { return view(master_, name); }
  Tensor grad(const std::string& name) const { return view(grads_, name); }
  // A view spanning `first` and the parameters packed after it, as one [rows, cols] matrix.
  Tensor param_span(const std::string& first, const Shape& shape) const { return span(params_, first, shape); }
  Tensor grad_span(const std::string& first, const Shape& shape) const { return span(grads_, first, shape); }
  const Tensor& params_flat() const { return params_; }
  const Tensor& master_flat() const { return master_; }
  const Tensor& grads_flat() const { return grads_; }
  bool master_is_params() const { return dtype_ == DType::F32; }

  void zero_grads() { grads_.zero_(); }
  // Frees the full fp32 master (bf16 mode) once a sharded optimizer holds its own shard of it;
  // master() and master_flat() are then unavailable.
  void release_master();
  bool has_master() const { return master_.defined(); }
  // Rounds the fp32 master into the bf16 parameters (after loading or initialising weights).
  void sync_params_from_master();

 private:
  Tensor view(const Tensor& flat, const std::string& name) const;
  Tensor span(const Tensor& flat, const std::string& first, const Shape& shape) const;
  std::vector<ParamSpec> specs_;
  std::map<std::string, size_t> index_;
  DType dtype_;
  Device device_;
  int64_t numel_ = 0;
  Tensor params_, master_, grads_;
};

}  // namespace llamatron
