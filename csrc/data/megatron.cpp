// Megatron-LM indexed datasets (FACTS.md): prefix.bin holds the tokens of every sequence back to
// back; prefix.idx holds the dtype, the sequence lengths and byte offsets, and the document starts.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"

namespace llamatron {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderBytes = 34;  // magic 9, version 8, dtype 1, sequences 8, documents 8

// A read-only memory map of a regular file, unmapped on destruction.
struct Mapping {
  const char* data = nullptr;
  size_t bytes = 0;
  Mapping(const std::string& path, const std::string& what) {
    const OpenedFile f = open_regular_file(path, what);
    bytes = static_cast<size_t>(f.bytes);
    void* map = bytes > 0 ? ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, f.fd, 0) : nullptr;
    ::close(f.fd);
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
    index_ = parse_megatron_index({idx_.data, idx_.bytes}, bin_.bytes, prefix + ".idx", prefix + ".bin");
    for (int64_t i = 0; i < index_.tokens; ++i) {
      const int64_t t = id(i);
      if (vocab > 0 && (t < 0 || t >= vocab))
        throw Error(prefix + ".bin: token " + std::to_string(i) + " has id " + std::to_string(t) + ", outside model.vocab_size " +
                    std::to_string(vocab) + ": the data was made with another tokenizer, or model.vocab_size is too small");
    }
  }
  int64_t size() const override { return index_.tokens; }
  int32_t token(int64_t i) const override { return static_cast<int32_t>(id(i)); }
  int64_t id(int64_t i) const override {
    const char* p = bin_.data + i * index_.width;
    switch (index_.code) {
      case 1: return load<uint8_t>(p);
      case 2: return load<int8_t>(p);
      case 3: return load<int16_t>(p);
      case 4: return load<int32_t>(p);
      case 5: return load<int64_t>(p);
      default: return load<uint16_t>(p);
    }
  }
  int64_t documents() const override { return index_.documents - 1; }
  std::string describe() const override {
    return "Megatron indexed dataset " + prefix_ + ": " + std::to_string(index_.tokens) + " tokens (dtype code " +
           std::to_string(index_.code) + "), " + std::to_string(documents()) + " documents";
  }

 private:
  std::string prefix_;
  Mapping idx_, bin_;
  MegatronIndex index_;
};

std::string prefix_of(const std::string& path) {
  for (const char* ext : {".bin", ".idx"})
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ext) == 0) return path.substr(0, path.size() - 4);
  return path;
}

}  // namespace

MegatronIndex parse_megatron_index(std::string_view idx, uint64_t bin_bytes, const std::string& idx_path, const std::string& bin_path) {
  const auto fail = [&](const std::string& msg) { throw Error(idx_path + ": " + msg); };
  const uint64_t size = idx.size();
  if (size < kHeaderBytes) fail("file is " + std::to_string(size) + " bytes, shorter than the 34-byte header (truncated or not an index)");
  if (std::memcmp(idx.data(), kMagic, sizeof(kMagic)) != 0) fail("wrong magic (expected MMIDIDX): not a Megatron index file");
  const uint64_t version = load<uint64_t>(idx.data() + 9);
  if (version != 1) fail("unsupported index version " + std::to_string(version) + " (expected 1)");
  MegatronIndex m;
  m.code = static_cast<uint8_t>(idx[17]);
  m.width = token_bytes(m.code);
  if (m.width == 0)
    fail("unknown or non-integer dtype code " + std::to_string(m.code) + " (token files use 1-5 or 8: uint8, int8, int16, int32, int64, uint16)");
  const uint64_t sequences = load<uint64_t>(idx.data() + 18), documents = load<uint64_t>(idx.data() + 26);
  // Sizes compared by division, so no count from the file can overflow the check.
  const uint64_t body = size - kHeaderBytes;
  if (sequences > body / 12 || (body - 12 * sequences) % 8 != 0 || documents != (body - 12 * sequences) / 8)
    fail("header promises " + std::to_string(sequences) + " sequences and " + std::to_string(documents) +
         " document entries, which do not fill the file's " + std::to_string(size) + " bytes: truncated or corrupt");
  m.sequences = static_cast<int64_t>(sequences), m.documents = static_cast<int64_t>(documents);
  const char* lengths = idx.data() + kHeaderBytes;
  const char* offsets = lengths + 4 * m.sequences;
  const char* starts = offsets + 8 * m.sequences;
  int64_t expected_offset = 0;
  for (int64_t s = 0; s < m.sequences; ++s) {  // sequences must tile the .bin in order
    const int32_t len = load<int32_t>(lengths + 4 * s);
    const int64_t off = load<int64_t>(offsets + 8 * s);
    if (len < 0 || off != expected_offset)
      fail("sequence " + std::to_string(s) + " has length " + std::to_string(len) + " at byte " + std::to_string(off) + " (expected byte " +
           std::to_string(expected_offset) + "): corrupt index");
    expected_offset += static_cast<int64_t>(len) * m.width;  // < 2^34 per step, and stopped below once past the .bin
    if (static_cast<uint64_t>(expected_offset) > bin_bytes) break;
  }
  if (static_cast<uint64_t>(expected_offset) != bin_bytes)
    throw Error(bin_path + ": the index describes " + (static_cast<uint64_t>(expected_offset) > bin_bytes ? "more than " : "") +
                std::to_string(expected_offset) + " bytes of tokens but the file is " + std::to_string(bin_bytes) +
                " bytes: truncated, or the .idx belongs to another .bin");
  m.tokens = expected_offset / m.width;
  // Document d spans sequences starts[d] .. starts[d + 1]: from 0 to every sequence, never backwards.
  if (m.documents < 1) fail("has no document index entries (Megatron's writer always stores at least [0])");
  int64_t previous = 0;
  for (int64_t d = 0; d < m.documents; ++d) {
    const int64_t start = load<int64_t>(starts + 8 * d);
    if (start < previous || start > m.sequences || (d == 0 && start != 0) || (d == m.documents - 1 && start != m.sequences))
      fail("document index " + std::to_string(d) + " is " + std::to_string(start) + ": document starts must run from 0 to the " +
           std::to_string(m.sequences) + " sequences without decreasing (after " + std::to_string(previous) + "): corrupt index");
    previous = start;
  }
  return m;
}

std::unique_ptr<TokenCorpus> open_megatron_corpus(const std::string& path, int64_t vocab) {
  return std::make_unique<MegatronCorpus>(prefix_of(path), vocab);
}

void write_megatron(const std::string& prefix, const std::vector<std::vector<int32_t>>& documents) {
  bool small = true;
  for (const auto& d : documents)
    for (int32_t t : d) small &= t >= 0 && t < 65536;
  const uint8_t code = small ? 8 : 4;
  const int width = small ? 2 : 4;
  std::string bin, idx;
  const auto put = [](std::string& out, const auto& v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  CheckedFile bin_file(prefix + ".bin", CheckedFile::Truncate, "Megatron data file");
  for (const auto& d : documents) {
    for (int32_t t : d) {
      if (small) put(bin, static_cast<uint16_t>(t));
      else put(bin, t);
    }
    if (bin.size() > (1 << 20)) bin_file.write(bin), bin.clear();
  }
  bin_file.write(bin);
  bin_file.close(true);
  idx.append(kMagic, sizeof(kMagic));
  put(idx, uint64_t{1});
  put(idx, code);
  put(idx, static_cast<uint64_t>(documents.size()));
  put(idx, static_cast<uint64_t>(documents.size() + 1));
  for (const auto& d : documents) put(idx, static_cast<int32_t>(d.size()));
  int64_t offset = 0;
  for (const auto& d : documents) put(idx, offset), offset += static_cast<int64_t>(d.size()) * width;
  for (size_t i = 0; i <= documents.size(); ++i) put(idx, static_cast<int64_t>(i));
  write_file_durably(prefix + ".idx", idx);
}

}  // namespace llamatron
