// The model's weight handles (csrc/model/llama.cpp makes them; kv_cache.cpp reads them too).
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

}  // namespace llamatron
