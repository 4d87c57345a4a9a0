// Hugging Face LLaMA config.json and model.safetensors.index.json (FACTS.md), parsed and checked:
// only what this engine computes is accepted (model_type llama, SiLU, no biases, no RoPE scaling,
// head_dim = hidden_size / num_attention_heads); every field is type- and range-checked.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "llamatron/config.h"
#include "llamatron/dtype.h"

namespace llamatron {

ModelConfig parse_hf_config(std::string_view text, const std::string& where);
// config.json of an export (LlamaForCausalLM keys; torch_dtype from `dtype`).
std::string hf_config_json(const ModelConfig& m, DType dtype);
// The shard files a model.safetensors.index.json names, in first-seen order (plain file names).
std::vector<std::string> parse_hf_index(std::string_view text, const std::string& where);

}  // namespace llamatron
