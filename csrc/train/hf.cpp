// Hugging Face LLaMA interop (FACTS.md): config.json + model.safetensors (or sharded
// model-*.safetensors with model.safetensors.index.json). Names, shapes and the rotate-half RoPE
// convention are the engine's own, so weights move across unchanged.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "llamatron/checkpoint.h"
#include "llamatron/errors.h"
#include "llamatron/model.h"
#include "llamatron/safetensors.h"

namespace llamatron {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_config(const std::string& dir) {
  const fs::path p = fs::path(dir) / "config.json";
  std::ifstream f(p);
  if (!f) throw Error("no config.json in " + dir + ": not a Hugging Face model directory");
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    throw Error(p.string() + ": not valid JSON: " + e.what());
  }
}

class HfWeights final : public GlobalWeights {
 public:
  explicit HfWeights(const std::string& dir) : model_(hf_model_config(dir)) {
    const fs::path single = fs::path(dir) / "model.safetensors", index = fs::path(dir) / "model.safetensors.index.json";
    std::vector<std::string> files;
    if (fs::exists(single)) {
      files.push_back(single.string());
    } else if (fs::exists(index)) {
      std::ifstream f(index);
      std::map<std::string, bool> seen;
      for (const auto& [name, file] : json::parse(f).at("weight_map").items())
        if (!seen[file.get<std::string>()]) seen[file], files.push_back((fs::path(dir) / file.get<std::string>()).string());
    } else {
      throw Error(dir + " has neither model.safetensors nor model.safetensors.index.json");
    }
    for (const std::string& f : files) parts_.push_back(read_safetensors(f));
  }
  std::vector<float> get(const std::string& name) const override {
    for (const SafetensorsFile& f : parts_) {
      auto it = f.tensors.find(name);
      if (it == f.tensors.end()) continue;
      const std::vector<double> v = it->second.to_f64();
      return {v.begin(), v.end()};
    }
    throw Error("the Hugging Face model has no tensor " + name + " (tie_word_embeddings differs, or not a LLaMA?)");
  }
  const ModelConfig& model() const override { return model_; }

 private:
  ModelConfig model_;
  std::vector<SafetensorsFile> parts_;
};

}  // namespace

ModelConfig hf_model_config(const std::string& dir) {
  const json c = read_config(dir);
  const auto need = [&](const char* key) -> const json& {
    if (!c.contains(key)) throw Error(dir + "/config.json has no \"" + key + "\": not a LLaMA config");
    return c.at(key);
  };
  if (c.contains("rope_scaling") && !c.at("rope_scaling").is_null())
    throw Error(dir + "/config.json uses rope_scaling, which this engine does not implement");
  ModelConfig m;
  m.vocab_size = need("vocab_size");
  m.dim = need("hidden_size");
  m.ffn_dim = need("intermediate_size");
  m.n_layers = need("num_hidden_layers");
  m.n_heads = need("num_attention_heads");
  m.n_kv_heads = c.value("num_key_value_heads", m.n_heads);
  m.norm_eps = need("rms_norm_eps");
  m.rope_theta = c.value("rope_theta", 10000.0);
  m.max_seq_len = c.value("max_position_embeddings", int64_t{2048});
  m.tie_embeddings = c.value("tie_word_embeddings", false);
  if (c.contains("head_dim") && !c.at("head_dim").is_null() && c.at("head_dim").get<int64_t>() != m.dim / m.n_heads)
    throw Error(dir + "/config.json has head_dim != hidden_size / num_attention_heads, which this engine does not implement");
  m.validate();
  return m;
}

std::unique_ptr<GlobalWeights> hf_weights(const std::string& dir) { return std::make_unique<HfWeights>(dir); }

void export_hf(const std::string& checkpoint_dir, const std::string& out_dir, DType dtype) {
  const std::unique_ptr<GlobalWeights> w = checkpoint_weights(checkpoint_dir);
  const ModelConfig& m = w->model();
  std::map<std::string, Tensor> tensors;
  for (const ParamSpec& s : llama_param_specs(m)) {
    const std::vector<float> v = w->get(s.name);
    Tensor full = Tensor::wrap(const_cast<float*>(v.data()), s.shape, DType::F32), out = Tensor::empty(s.shape, dtype);
    out.copy_from(full);
    tensors[s.name] = out;
  }
  fs::create_directories(out_dir);
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  const json config = {{"architectures", {"LlamaForCausalLM"}},
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
                       {"torch_dtype", dtype == DType::BF16 ? "bfloat16" : "float32"}};
  std::ofstream(fs::path(out_dir) / "config.json") << config.dump(2) << "\n";
}

}  // namespace llamatron
