#include "llamatron/hf_config.h"

#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "llamatron/checked.h"
#include "llamatron/errors.h"

namespace llamatron {
using nlohmann::json;

ModelConfig parse_hf_config(std::string_view text, const std::string& where) {
  const json j = parse_json_strictly(text, where);
  const JsonObject c(j, where);
  const auto unsupported = [&](const std::string& key, const std::string& what) {
    c.fail(key, "is " + json_brief(c.raw(key)) + ": " + what + ", which this engine does not implement (it trains LLaMA)");
  };
  if (!c.has("model_type")) c.fail("model_type", "is missing: expected \"llama\" (a LLaMA config.json)");
  if (c.string("model_type") != "llama") unsupported("model_type", "another architecture");
  if (c.optional_string("hidden_act").value_or("silu") != "silu") unsupported("hidden_act", "another activation than SiLU");
  if (c.optional_boolean("attention_bias").value_or(false)) unsupported("attention_bias", "biases in the attention projections");
  if (c.optional_boolean("mlp_bias").value_or(false)) unsupported("mlp_bias", "biases in the MLP");
  if (c.has("rope_scaling") && !c.raw("rope_scaling").is_null()) unsupported("rope_scaling", "RoPE scaling");
  const int64_t big = std::numeric_limits<int32_t>::max();
  ModelConfig m;
  m.vocab_size = c.integer("vocab_size", 1, big);
  m.dim = c.integer("hidden_size", 1, big);
  m.ffn_dim = c.integer("intermediate_size", 1, big);
  m.n_layers = c.integer("num_hidden_layers", 1, big);
  m.n_heads = c.integer("num_attention_heads", 1, big);
  m.n_kv_heads = c.optional_integer("num_key_value_heads", 1, big).value_or(m.n_heads);
  m.norm_eps = c.number("rms_norm_eps", std::numeric_limits<double>::min(), 1.0);
  m.rope_theta = c.optional_number("rope_theta", std::numeric_limits<double>::min(), 1e300).value_or(10000.0);
  m.max_seq_len = c.optional_integer("max_position_embeddings", 1, big).value_or(2048);
  m.tie_embeddings = c.optional_boolean("tie_word_embeddings").value_or(false);
  if (m.dim % m.n_heads != 0)
    c.fail("hidden_size", "(" + std::to_string(m.dim) + ") is not divisible by num_attention_heads (" + std::to_string(m.n_heads) + ")");
  if (const auto head_dim = c.optional_integer("head_dim", 1, big); head_dim && *head_dim != m.dim / m.n_heads)
    unsupported("head_dim", "a head size other than hidden_size / num_attention_heads");
  try {
    m.validate();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return m;
}

std::string hf_config_json(const ModelConfig& m, DType dtype) {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", m.vocab_size},
              {"hidden_size", m.dim},
              {"intermediate_size", m.resolved_ffn_dim()},
              {"num_hidden_layers", m.n_layers},
              {"num_attention_heads", m.n_heads},
              {"num_key_value_heads", m.n_kv_heads},
              {"head_dim", m.head_dim()},
              {"hidden_act", "silu"},
              {"rms_norm_eps", m.norm_eps},
              {"rope_theta", m.rope_theta},
              {"max_position_embeddings", m.max_seq_len},
              {"tie_word_embeddings", m.tie_embeddings},
              {"attention_bias", false},
              {"mlp_bias", false},
              {"torch_dtype", dtype == DType::BF16 ? "bfloat16" : "float32"}}
             .dump(2) +
         "\n";
}

std::vector<std::string> parse_hf_index(std::string_view text, const std::string& where) {
  const json j = parse_json_strictly(text, where);
  const JsonObject index(j, where);
  const JsonObject map = index.object("weight_map");
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (const auto& [tensor, file] : j.at("weight_map").items()) {
    const std::string name = map.string(tensor);
    const bool plain = name.size() > 12 && name.find('/') == std::string::npos && name.compare(name.size() - 12, 12, ".safetensors") == 0;
    if (!plain) map.fail(tensor, "names the file " + json_brief(file) + ", expected a .safetensors file in the same directory");
    if (seen.insert(name).second) files.push_back(name);
  }
  if (files.empty()) index.fail("weight_map", "is empty: it names no weight files");
  return files;
}

}  // namespace llamatron
