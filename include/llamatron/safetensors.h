// safetensors files (FACTS.md): the Hugging Face weight format, our checkpoint format, and the
// format the PyTorch reference cases in tests/reference are written in. Reading checks the header
// as the reference implementation does (docs/formats.md): its length, strict JSON, each entry's
// dtype, shape and offsets, and that the entries tile the data section exactly.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "llamatron/tensor.h"

namespace llamatron {

struct SafetensorsEntry {
  std::string dtype;  // "F32", "F64", "BF16", "I32", ...
  Shape shape;
  std::vector<char> bytes;
  int64_t numel() const;
  std::vector<double> to_f64() const;    // any float or int dtype, widened
  Tensor to_tensor(DType dtype) const;   // F32/F64/BF16 -> fp32/bf16, I32 -> int32
};

struct SafetensorsFile {
  std::map<std::string, SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
  const SafetensorsEntry& at(const std::string& name) const;  // throws naming the file and tensor
  std::string path;
};

// A whole file's bytes (the fuzz target's entry point); `path` names it in errors.
SafetensorsFile parse_safetensors(std::string_view file, const std::string& path);
SafetensorsFile read_safetensors(const std::string& path);
// Written, fsynced and closed, each step checked.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace llamatron
