#include "llamatron/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "llamatron/checked.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"

namespace llamatron {
namespace {

// The reference implementation's limit on the JSON header (safetensors' MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Element sizes of the dtypes this reader knows (others are rejected by name).
size_t element_size(const std::string& dt) {
  if (dt == "F64" || dt == "I64" || dt == "U64") return 8;
  if (dt == "F32" || dt == "I32" || dt == "U32") return 4;
  if (dt == "BF16" || dt == "F16" || dt == "I16" || dt == "U16") return 2;
  if (dt == "U8" || dt == "I8" || dt == "BOOL") return 1;
  return 0;
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

struct HeaderEntry {
  std::string name, dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // into the data section
};

struct Header {
  uint64_t data_start = 0;  // 8 + N
  std::vector<HeaderEntry> entries;
  std::map<std::string, std::string> metadata;
};

// The 8-byte length and the JSON header in `prefix` (which holds at least them), for a file of
// file_size bytes: every entry checked, and the entries sorted by offset, tiling the data section.
Header parse_header(std::string_view prefix, uint64_t file_size, const std::string& path) {
  const auto fail = [&](const std::string& msg) -> void { throw Error(path + ": " + msg); };
  if (file_size < 8 || prefix.size() < 8) fail("not a safetensors file (" + std::to_string(file_size) + " bytes, shorter than the 8-byte length)");
  const uint64_t n = read_as<uint64_t>(prefix.data());
  if (n < 2 || n > kMaxHeaderBytes || n > file_size - 8)
    fail("not a safetensors file: the header length " + std::to_string(n) + " is impossible for a file of " + std::to_string(file_size) +
         " bytes (at most " + std::to_string(kMaxHeaderBytes) + ")");
  LT_CHECK(prefix.size() >= 8 + n, "parse_header needs the whole header");
  const std::string_view text = prefix.substr(8, n);
  if (text.front() != '{') fail("not a safetensors file: the header is not a JSON object");
  const nlohmann::json j = parse_json_strictly(text, path + " (safetensors header)");
  if (!j.is_object()) fail("the safetensors header is not a JSON object");
  Header h;
  h.data_start = 8 + n;
  const uint64_t data_bytes = file_size - h.data_start;
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail("\"__metadata__\" is not an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) fail("\"__metadata__\" entry \"" + k + "\" is " + json_brief(v) + ", expected a string");
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const JsonObject e(info, path + ": tensor \"" + name + "\"");
    e.only({"dtype", "shape", "data_offsets"});
    HeaderEntry t;
    t.name = name;
    t.dtype = e.string("dtype");
    const size_t es = element_size(t.dtype);
    if (es == 0) e.fail("dtype", "is \"" + t.dtype + "\", which this reader does not know (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, ...)");
    t.shape = e.integers("shape", 0, 8, 0, std::numeric_limits<int64_t>::max());
    const std::vector<int64_t> off = e.integers("data_offsets", 2, 2, 0, std::numeric_limits<int64_t>::max());
    t.begin = static_cast<uint64_t>(off[0]), t.end = static_cast<uint64_t>(off[1]);
    const std::optional<int64_t> numel = checked_numel(t.shape);
    const std::optional<int64_t> bytes = numel ? checked_mul(*numel, static_cast<int64_t>(es)) : std::nullopt;
    if (!bytes) e.fail("shape", "is " + shape_str(t.shape) + ": too many elements");
    if (t.end < t.begin || t.end > data_bytes)
      e.fail("data_offsets", "are [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "], outside the data section of " +
                                 std::to_string(data_bytes) + " bytes (truncated file?)");
    if (t.end - t.begin != static_cast<uint64_t>(*bytes))
      e.fail("data_offsets", "span " + std::to_string(t.end - t.begin) + " bytes, but shape " + shape_str(t.shape) + " of " + t.dtype +
                                 " needs " + std::to_string(*bytes));
    h.entries.push_back(std::move(t));
  }
  // As the reference implementation requires: no overlaps, no holes, nothing after the last tensor.
  std::sort(h.entries.begin(), h.entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const HeaderEntry& t : h.entries) {
    if (t.begin != at)
      fail("tensor \"" + t.name + "\" starts at byte " + std::to_string(t.begin) + " of the data section, expected " + std::to_string(at) +
           (t.begin < at ? ": it overlaps the tensor before it" : ": there is a hole before it"));
    at = t.end;
  }
  if (at != data_bytes)
    fail("the tensors end at byte " + std::to_string(at) + " of the data section, but it holds " + std::to_string(data_bytes) +
         " bytes: truncated, or extra bytes after the last tensor");
  return h;
}

void pread_all(int fd, char* out, uint64_t bytes, uint64_t at, const std::string& path) {
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, out, bytes, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("cannot read " + path + ": " + (n < 0 ? std::strerror(errno) : "the file shrank while being read"));
    out += n, bytes -= static_cast<uint64_t>(n), at += static_cast<uint64_t>(n);
  }
}

// Closes a descriptor on every path out.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

int64_t SafetensorsEntry::numel() const { return static_cast<int64_t>(bytes.size() / element_size(dtype)); }

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
    else throw Error("cannot read safetensors dtype " + dtype + " as numbers (F64, F32, BF16, I64 and I32 are read)");
  }
  return out;
}

Tensor SafetensorsEntry::to_tensor(DType want) const {
  Tensor t = Tensor::empty(shape, want);
  if (want == DType::I32) {
    if (dtype != "I32") throw Error("an integer tensor is stored as " + dtype + ", expected I32");
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

SafetensorsFile parse_safetensors(std::string_view file, const std::string& path) {
  const Header h = parse_header(file, file.size(), path);
  SafetensorsFile out;
  out.path = path, out.metadata = h.metadata;
  for (const HeaderEntry& t : h.entries) {
    const char* begin = file.data() + h.data_start + t.begin;
    out.tensors[t.name] = {t.dtype, t.shape, std::vector<char>(begin, begin + (t.end - t.begin))};
  }
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const OpenedFile f = open_regular_file(path, "safetensors file");
  const FdCloser closer{f.fd};
  std::string prefix(8, '\0');
  if (f.bytes >= 8) pread_all(f.fd, prefix.data(), 8, 0, path);
  const uint64_t n = read_as<uint64_t>(prefix.data());
  if (f.bytes >= 8 && n >= 2 && n <= kMaxHeaderBytes && n <= f.bytes - 8) {
    prefix.resize(8 + n);
    pread_all(f.fd, prefix.data() + 8, n, 8, path);
  }
  const Header h = parse_header(prefix, f.bytes, path);
  SafetensorsFile out;
  out.path = path, out.metadata = h.metadata;
  for (const HeaderEntry& t : h.entries) {
    SafetensorsEntry& e = out.tensors[t.name];
    e.dtype = t.dtype, e.shape = t.shape;
    e.bytes.resize(t.end - t.begin);
    pread_all(f.fd, e.bytes.data(), e.bytes.size(), h.data_start + t.begin, path);
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
  CheckedFile f(path, CheckedFile::Truncate, "safetensors file");
  const uint64_t n = header.size();
  f.write({reinterpret_cast<const char*>(&n), 8});
  f.write(header);
  for (const auto& [name, t] : tensors) f.write({static_cast<const char*>(t.raw()), t.nbytes()});
  f.close(true);
}

}  // namespace llamatron
