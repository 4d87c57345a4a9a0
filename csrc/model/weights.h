// The model's weight handles (csrc/model/llama.cpp makes them; kv_cache.cpp reads them too), and
// what both hand the ops.
#pragma once
#include <vector>

#include "llamatron/model.h"

namespace llamatron {

// A weight and its gradient, side by side.
struct Param {
  Tensor w, g;
};

struct LlamaModel::WeightsLayer {
  Param attn_norm, wq, wk, wv, wo, mlp_norm, wgate_up, wdown;  // wgate_up: [gate; up], [2F, C]
};

struct LlamaModel::Weights {
  using Layer = WeightsLayer;
  Param embed, final_norm, head;  // embed on the first stage, final_norm and head on the last
  std::vector<Layer> layers;      // this stage's
};

// A packed documents' per-position vector (documents.h) as an int32 [B, T] tensor on `device`;
// undefined when it is empty (its switch is off).
inline Tensor per_position_tensor(const std::vector<int32_t>& host, int64_t B, int64_t T, Device device) {
  if (host.empty()) return Tensor();
  Tensor t = Tensor::empty({B, T}, DType::I32, device);
  t.copy_from(Tensor::wrap(const_cast<int32_t*>(host.data()), {B, T}, DType::I32));
  return t;
}

}  // namespace llamatron
