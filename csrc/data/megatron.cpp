// Megatron-LM indexed datasets (FACTS.md): prefix.bin holds the tokens of every sequence back to
// back; prefix.idx holds the dtype, the sequence lengths and byte offsets, and the document starts.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "llamatron/data.h"
#include "llamatron/errors.h"

namespace llamatron {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderBytes = 34;  // magic 9, version 8, dtype 1, sequences 8, documents 8

// A read-only memory map, unmapped on destruction.
struct Mapping {
  const char* data = nullptr;
  size_t bytes = 0;
  Mapping(const std::string& path, const std::string& what) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error("cannot open " + what + " " + path + ": " + std::strerror(errno));
    struct stat st{};
    ::fstat(fd, &st);
    bytes = static_cast<size_t>(st.st_size);
    void* map = bytes > 0 ? ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
    ::close(fd);
    if (map == MAP_FAILED) throw Error("cannot mmap " + path + ": " + std::strerror(errno));
    data = static_cast<const char*>(map);
  }
  ~Mapping() {
    if (data) ::munmap(const_cast<char*>(data), bytes);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Token widths of the dtype codes a token file can use (floats never hold token ids).
int token_bytes(uint8_t code) {
  switch (code) {
    case 1: case 2: return 1;  // uint8, int8
    case 3: case 8: return 2;  // int16, uint16
    case 4: return 4;          // int32
    case 5: return 8;          // int64
    default: return 0;
  }
}

class MegatronCorpus final : public TokenCorpus {
 public:
  MegatronCorpus(const std::string& prefix, int64_t vocab)
      : prefix_(prefix), idx_(prefix + ".idx", "Megatron index"), bin_(prefix + ".bin", "Megatron data file") {
    const std::string idx_path = prefix + ".idx";
    const auto fail = [&](const std::string& msg) { throw Error(idx_path + ": " + msg); };
    if (idx_.bytes < kHeaderBytes) fail("file is " + std::to_string(idx_.bytes) + " bytes, shorter than the 34-byte header (truncated or not an index)");
    if (std::memcmp(idx_.data, kMagic, sizeof(kMagic)) != 0) fail("wrong magic (expected MMIDIDX): not a Megatron index file");
    const uint64_t version = load<uint64_t>(idx_.data + 9);
    if (version != 1) fail("unsupported index version " + std::to_string(version) + " (expected 1)");
    code_ = static_cast<uint8_t>(idx_.data[17]);
    width_ = token_bytes(code_);
    if (width_ == 0)
      fail("unknown or non-integer dtype code " + std::to_string(code_) + " (token files use 1-5 or 8: uint8, int8, int16, int32, int64, uint16)");
    sequences_ = static_cast<int64_t>(load<uint64_t>(idx_.data + 18));
    documents_ = static_cast<int64_t>(load<uint64_t>(idx_.data + 26));
    const size_t need = kHeaderBytes + static_cast<size_t>(sequences_) * (4 + 8) + static_cast<size_t>(documents_) * 8;
    if (sequences_ < 0 || documents_ < 0 || need != idx_.bytes)
      fail("header promises " + std::to_string(sequences_) + " sequences and " + std::to_string(documents_) + " document entries (" +
           std::to_string(need) + " bytes) but the file is " + std::to_string(idx_.bytes) + " bytes: truncated or corrupt");
    const char* lengths = idx_.data + kHeaderBytes;
    const char* offsets = lengths + 4 * sequences_;
    int64_t expected_offset = 0;
    for (int64_t s = 0; s < sequences_; ++s) {  // sequences must tile the .bin in order
      const int32_t len = load<int32_t>(lengths + 4 * s);
      const int64_t off = load<int64_t>(offsets + 8 * s);
      if (len < 0 || off != expected_offset)
        fail("sequence " + std::to_string(s) + " has length " + std::to_string(len) + " at byte " + std::to_string(off) +
             " (expected byte " + std::to_string(expected_offset) + "): corrupt index");
      expected_offset += static_cast<int64_t>(len) * width_;
    }
    if (static_cast<size_t>(expected_offset) != bin_.bytes)
      throw Error(prefix + ".bin: the index describes " + std::to_string(expected_offset) + " bytes of tokens but the file is " +
                  std::to_string(bin_.bytes) + " bytes: truncated, or the .idx belongs to another .bin");
    tokens_ = expected_offset / width_;
    for (int64_t i = 0; i < tokens_; ++i) {
      const int64_t t = token64(i);
      if (t < 0 || t >= vocab)
        throw Error(prefix + ".bin: token " + std::to_string(i) + " has id " + std::to_string(t) + ", outside model.vocab_size " +
                    std::to_string(vocab) + ": the data was made with another tokenizer, or model.vocab_size is too small");
    }
  }
  int64_t size() const override { return tokens_; }
  int32_t token(int64_t i) const override { return static_cast<int32_t>(token64(i)); }
  int64_t documents() const override { return documents_ > 0 ? documents_ - 1 : 0; }
  std::string describe() const override {
    return "Megatron indexed dataset " + prefix_ + ": " + std::to_string(tokens_) + " tokens (dtype code " + std::to_string(code_) +
           "), " + std::to_string(documents()) + " documents";
  }

 private:
  int64_t token64(int64_t i) const {
    const char* p = bin_.data + i * width_;
    switch (code_) {
      case 1: return load<uint8_t>(p);
      case 2: return load<int8_t>(p);
      case 3: return load<int16_t>(p);
      case 4: return load<int32_t>(p);
      case 5: return load<int64_t>(p);
      default: return load<uint16_t>(p);
    }
  }
  std::string prefix_;
  Mapping idx_, bin_;
  uint8_t code_ = 0;
  int width_ = 0;
  int64_t sequences_ = 0, documents_ = 0, tokens_ = 0;
};

std::string prefix_of(const std::string& path) {
  for (const char* ext : {".bin", ".idx"})
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ext) == 0) return path.substr(0, path.size() - 4);
  return path;
}

}  // namespace

std::unique_ptr<TokenCorpus> open_megatron_corpus(const std::string& path, int64_t vocab) {
  return std::make_unique<MegatronCorpus>(prefix_of(path), vocab);
}

void write_megatron(const std::string& prefix, const std::vector<std::vector<int32_t>>& documents) {
  bool small = true;
  for (const auto& d : documents)
    for (int32_t t : d) small &= t >= 0 && t < 65536;
  const uint8_t code = small ? 8 : 4;
  const int width = small ? 2 : 4;
  std::ofstream bin(prefix + ".bin", std::ios::binary | std::ios::trunc), idx(prefix + ".idx", std::ios::binary | std::ios::trunc);
  if (!bin || !idx) throw Error("cannot write " + prefix + ".bin / .idx");
  const auto put = [](std::ofstream& f, const auto& v) { f.write(reinterpret_cast<const char*>(&v), sizeof(v)); };
  for (const auto& d : documents)
    for (int32_t t : d) {
      if (small) put(bin, static_cast<uint16_t>(t));
      else put(bin, t);
    }
  idx.write(kMagic, sizeof(kMagic));
  put(idx, uint64_t{1});
  put(idx, code);
  put(idx, static_cast<uint64_t>(documents.size()));
  put(idx, static_cast<uint64_t>(documents.size() + 1));
  for (const auto& d : documents) put(idx, static_cast<int32_t>(d.size()));
  int64_t offset = 0;
  for (const auto& d : documents) put(idx, offset), offset += static_cast<int64_t>(d.size()) * width;
  for (size_t i = 0; i <= documents.size(); ++i) put(idx, static_cast<int64_t>(i));
  if (!bin || !idx) throw Error("failed writing " + prefix + ".bin / .idx");
}

}  // namespace llamatron
