#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/random.h"

namespace llamatron {
namespace {
constexpr int32_t kMagicU16 = 20240520, kMagicU32 = 20240801;
constexpr size_t kHeaderBytes = 256 * sizeof(int32_t);

// One memory-mapped shard.
struct Shard {
  std::string path;
  const void* map = nullptr;
  size_t map_bytes = 0;
  LlmcHeader header;
  int64_t id(int64_t i) const;
};

int64_t Shard::id(int64_t i) const {
  const char* base = static_cast<const char*>(map) + kHeaderBytes;
  if (header.token_bytes == 2) {
    uint16_t t;
    std::memcpy(&t, base + 2 * i, 2);
    return t;
  }
  uint32_t t;
  std::memcpy(&t, base + 4 * i, 4);
  return t;
}

Shard open_shard(const std::string& path, int64_t vocab) {
  const OpenedFile f = open_regular_file(path, "data shard");
  const size_t size = static_cast<size_t>(f.bytes);
  void* map = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0) : nullptr;
  ::close(f.fd);
  if (map == MAP_FAILED) throw Error("cannot mmap data shard " + path + ": " + std::strerror(errno));
  Shard s{path, map, size, {}};
  try {
    s.header = parse_llmc_header({static_cast<const char*>(map), size}, size, path);
    for (int64_t i = 0; i < s.header.tokens; ++i) {
      const int64_t t = s.id(i);
      if (vocab > 0 && t >= vocab)
        throw Error(path + ": token " + std::to_string(i) + " has id " + std::to_string(t) + " >= model.vocab_size " + std::to_string(vocab) +
                    ": the data was tokenized for a larger vocabulary");
    }
  } catch (...) {
    if (map) ::munmap(map, size);
    throw;
  }
  return s;
}

// Shards concatenated into one stream; a token is found by binary search over the shard starts.
class LlmcCorpus final : public TokenCorpus {
 public:
  explicit LlmcCorpus(std::vector<Shard> shards) : shards_(std::move(shards)) {
    for (const Shard& s : shards_) starts_.push_back(total_), total_ += s.header.tokens;
  }
  ~LlmcCorpus() override {
    for (Shard& s : shards_)
      if (s.map) ::munmap(const_cast<void*>(s.map), s.map_bytes);
  }
  int64_t size() const override { return total_; }
  int32_t token(int64_t i) const override { return static_cast<int32_t>(id(i)); }
  int64_t id(int64_t i) const override {
    const size_t k = std::upper_bound(starts_.begin(), starts_.end(), i) - starts_.begin() - 1;
    return shards_[k].id(i - starts_[k]);
  }
  int64_t documents() const override { return -1; }
  std::string describe() const override {
    return "llm.c shards: " + std::to_string(shards_.size()) + " file(s), " + std::to_string(total_) + " tokens (" +
           (shards_.front().header.token_bytes == 2 ? "uint16" : "uint32") + ")";
  }

 private:
  std::vector<Shard> shards_;
  std::vector<int64_t> starts_;
  int64_t total_ = 0;
};

}  // namespace

LlmcHeader parse_llmc_header(std::string_view head, uint64_t file_size, const std::string& path) {
  const auto fail = [&](const std::string& msg) { throw Error(path + ": " + msg); };
  if (file_size < kHeaderBytes || head.size() < kHeaderBytes)
    fail("file is " + std::to_string(file_size) + " bytes, shorter than the 1024-byte llm.c header (truncated or not a shard)");
  int32_t header[3];
  std::memcpy(header, head.data(), sizeof(header));
  LlmcHeader h;
  if (header[0] == kMagicU16 && header[1] == 1) h.token_bytes = 2;
  else if (header[0] == kMagicU32 && header[1] == 7) h.token_bytes = 4;
  else if (header[0] != kMagicU16 && header[0] != kMagicU32)
    fail("wrong magic " + std::to_string(header[0]) + " (expected llm.c's 20240520 or 20240801): not an llm.c token shard");
  else
    fail("unsupported llm.c shard version " + std::to_string(header[1]) + " for magic " + std::to_string(header[0]) +
         " (expected 1 for uint16 or 7 for uint32 tokens)");
  h.tokens = header[2];
  const int64_t expected = static_cast<int64_t>(kHeaderBytes) + h.tokens * h.token_bytes;  // |tokens| < 2^31: no overflow
  if (h.tokens < 0 || static_cast<uint64_t>(expected) != file_size)
    fail("header says " + std::to_string(h.tokens) + " tokens (" + std::to_string(expected) + " bytes) but the file is " +
         std::to_string(file_size) + " bytes: the shard is truncated or corrupt; re-create it");
  return h;
}

std::unique_ptr<TokenCorpus> open_llmc_corpus(const std::vector<std::string>& paths, int64_t vocab) {
  std::vector<Shard> shards;
  try {
    for (const std::string& p : paths) shards.push_back(open_shard(p, vocab));
  } catch (...) {
    for (Shard& s : shards)
      if (s.map) ::munmap(const_cast<void*>(s.map), s.map_bytes);
    throw;
  }
  return std::make_unique<LlmcCorpus>(std::move(shards));
}

void write_llmc_shard(const std::string& path, const std::vector<int32_t>& tokens) {
  const bool small = std::all_of(tokens.begin(), tokens.end(), [](int32_t t) { return t >= 0 && t < 65536; });
  int32_t header[256] = {};
  header[0] = small ? kMagicU16 : kMagicU32;
  header[1] = small ? 1 : 7;
  header[2] = static_cast<int32_t>(tokens.size());
  std::string out(reinterpret_cast<const char*>(header), sizeof(header));
  for (int32_t t : tokens) {
    if (small) {
      const uint16_t v = static_cast<uint16_t>(t);
      out.append(reinterpret_cast<const char*>(&v), 2);
    } else {
      out.append(reinterpret_cast<const char*>(&t), 4);
    }
  }
  write_file_durably(path, out);
}

std::vector<std::string> expand_paths(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const std::string& p : patterns) {
    glob_t g{};
    const int rc = ::glob(p.c_str(), 0, nullptr, &g);
    if (rc != 0) {
      globfree(&g);
      throw Error("data path '" + p + "' matches no file: check data.paths");
    }
    std::vector<std::string> found(g.gl_pathv, g.gl_pathv + g.gl_pathc);
    globfree(&g);
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}


}  // namespace llamatron
