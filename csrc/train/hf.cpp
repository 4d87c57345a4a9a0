// Hugging Face LLaMA interop (FACTS.md): config.json + model.safetensors (or sharded
// model-*.safetensors with model.safetensors.index.json). Names, shapes and the rotate-half RoPE
// convention are the engine's own, so weights move across unchanged.
#include <filesystem>
#include <map>

#include "llamatron/checkpoint.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/hf_config.h"
#include "llamatron/model.h"
#include "llamatron/safetensors.h"

namespace llamatron {
namespace fs = std::filesystem;

namespace {

class HfWeights final : public GlobalWeights {
 public:
  explicit HfWeights(const std::string& dir) : model_(hf_model_config(dir)) {
    const fs::path single = fs::path(dir) / "model.safetensors", index = fs::path(dir) / "model.safetensors.index.json";
    std::vector<std::string> files;
    std::error_code ec;
    if (fs::exists(single, ec)) {
      files.push_back(single.string());
    } else if (fs::exists(index, ec)) {
      for (const std::string& f : parse_hf_index(read_small_file(index.string(), "safetensors index"), index.string()))
        files.push_back((fs::path(dir) / f).string());
    } else {
      throw Error(dir + " has neither model.safetensors nor model.safetensors.index.json");
    }
    for (const std::string& f : files) {
      parts_.push_back(read_safetensors(f));
      for (const auto& [name, e] : parts_.back().tensors)
        if (const auto [it, fresh] = where_.emplace(name, parts_.size() - 1); !fresh)
          throw Error(f + ": tensor " + name + " is also in " + parts_[it->second].path + ": a tensor must be in one shard");
    }
  }
  std::vector<float> get(const std::string& name, const Shape& shape) const override {
    auto it = where_.find(name);
    if (it == where_.end()) throw Error("the Hugging Face model has no tensor " + name + " (tie_word_embeddings differs, or not a LLaMA?)");
    const SafetensorsFile& file = parts_[it->second];
    const SafetensorsEntry& e = file.at(name);
    if (e.shape != shape)
      throw Error(file.path + ": tensor " + name + " has shape " + shape_str(e.shape) + " but config.json's model needs " + shape_str(shape) +
                  " (transposed, or from another model)");
    if (e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F64")
      throw Error(file.path + ": tensor " + name + " is " + e.dtype + "; weights are read as F32, BF16 or F64");
    const std::vector<double> v = e.to_f64();
    return {v.begin(), v.end()};
  }
  const ModelConfig& model() const override { return model_; }

 private:
  ModelConfig model_;
  std::vector<SafetensorsFile> parts_;
  std::map<std::string, size_t> where_;  // tensor -> its part
};

}  // namespace

ModelConfig hf_model_config(const std::string& dir) {
  const fs::path p = fs::path(dir) / "config.json";
  std::error_code ec;
  if (!fs::exists(p, ec)) throw Error("no config.json in " + dir + ": not a Hugging Face model directory");
  return parse_hf_config(read_small_file(p.string(), "Hugging Face config"), p.string());
}

std::unique_ptr<GlobalWeights> hf_weights(const std::string& dir) { return std::make_unique<HfWeights>(dir); }

void export_hf(const std::string& checkpoint_dir, const std::string& out_dir, DType dtype) {
  const std::unique_ptr<GlobalWeights> w = checkpoint_weights(checkpoint_dir);
  const ModelConfig& m = w->model();
  std::map<std::string, Tensor> tensors;
  for (const ParamSpec& s : llama_param_specs(m)) {
    const std::vector<float> v = w->get(s.name, s.shape);
    Tensor full = Tensor::wrap(const_cast<float*>(v.data()), s.shape, DType::F32), out = Tensor::empty(s.shape, dtype);
    out.copy_from(full);
    tensors[s.name] = out;
  }
  fs::create_directories(out_dir);
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_durably((fs::path(out_dir) / "config.json").string(), hf_config_json(m, dtype));
}

}  // namespace llamatron
