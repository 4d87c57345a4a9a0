#include "llamatron/safetensors.h"

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "llamatron/errors.h"

namespace llamatron {
namespace {

size_t element_size(const std::string& dt) {
  if (dt == "F64" || dt == "I64") return 8;
  if (dt == "F32" || dt == "I32") return 4;
  if (dt == "BF16" || dt == "F16" || dt == "I16") return 2;
  if (dt == "U8" || dt == "I8" || dt == "BOOL") return 1;
  throw Error("unknown safetensors dtype '" + dt + "'");
}

std::string st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
  }
  return "?";
}

template <typename T>
T read_as(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

std::vector<double> SafetensorsEntry::to_f64() const {
  const size_t es = element_size(dtype), n = bytes.size() / es;
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    const char* p = bytes.data() + i * es;
    if (dtype == "F64") out[i] = read_as<double>(p);
    else if (dtype == "F32") out[i] = read_as<float>(p);
    else if (dtype == "BF16") out[i] = static_cast<float>(read_as<bf16>(p));
    else if (dtype == "I32") out[i] = read_as<int32_t>(p);
    else if (dtype == "I64") out[i] = static_cast<double>(read_as<int64_t>(p));
    else throw Error("cannot widen safetensors dtype " + dtype);
  }
  return out;
}

Tensor SafetensorsEntry::to_tensor(DType want) const {
  Tensor t = Tensor::empty(shape, want);
  if (want == DType::I32) {
    LT_CHECK(dtype == "I32", "integer tensor stored as " + dtype);
    std::memcpy(t.raw(), bytes.data(), bytes.size());
    return t;
  }
  const std::vector<double> v = to_f64();
  for (size_t i = 0; i < v.size(); ++i) {
    if (want == DType::F32) t.data<float>()[i] = static_cast<float>(v[i]);
    else t.data<bf16>()[i] = bf16(static_cast<float>(v[i]));
  }
  return t;
}

const SafetensorsEntry& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(path + ": no tensor named '" + name + "'");
  return it->second;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path + ": check the path");
  f.seekg(0, std::ios::end);
  const uint64_t file_size = f.tellg();
  f.seekg(0);
  uint64_t header_len = 0;
  if (file_size < 8 || !f.read(reinterpret_cast<char*>(&header_len), 8) || header_len > file_size - 8)
    throw Error(path + ": not a safetensors file (bad header length)");
  std::string header(header_len, ' ');
  f.read(header.data(), header_len);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const std::exception& e) {
    throw Error(path + ": safetensors header is not JSON (" + e.what() + ")");
  }
  SafetensorsFile out;
  out.path = path;
  const uint64_t data_start = 8 + header_len;
  for (auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      for (auto& [k, v] : info.items()) out.metadata[k] = v.get<std::string>();
      continue;
    }
    SafetensorsEntry e;
    e.dtype = info.at("dtype").get<std::string>();
    e.shape = info.at("shape").get<Shape>();
    const uint64_t begin = info.at("data_offsets")[0], end = info.at("data_offsets")[1];
    if (end < begin || data_start + end > file_size ||
        end - begin != shape_numel(e.shape) * element_size(e.dtype))
      throw Error(path + ": tensor '" + name + "' has offsets outside the file or a size that does not match its shape");
    e.bytes.resize(end - begin);
    f.seekg(data_start + begin);
    f.read(e.bytes.data(), end - begin);
    out.tensors.emplace(name, std::move(e));
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json j;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    j[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  if (!metadata.empty()) j["__metadata__"] = metadata;
  std::string header = j.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write " + path + ": check that the directory exists and is writable");
  const uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(header.data(), n);
  for (const auto& [name, t] : tensors) f.write(static_cast<const char*>(t.raw()), t.nbytes());
  if (!f) throw Error("failed writing " + path + " (disk full?)");
}

}  // namespace llamatron
