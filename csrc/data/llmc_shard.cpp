#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "llamatron/data.h"
#include "llamatron/errors.h"
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
  int64_t n_tokens = 0;
  int token_bytes = 2;
  int32_t token(int64_t i) const;
};

int32_t Shard::token(int64_t i) const {
  const char* base = static_cast<const char*>(map) + kHeaderBytes;
  if (token_bytes == 2) {
    uint16_t t;
    std::memcpy(&t, base + 2 * i, 2);
    return t;
  }
  uint32_t t;
  std::memcpy(&t, base + 4 * i, 4);
  return static_cast<int32_t>(t);
}

Shard open_shard(const std::string& path, int64_t vocab) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open data shard " + path + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < kHeaderBytes) {
    ::close(fd);
    throw Error(path + ": file is " + std::to_string(size) + " bytes, shorter than the 1024-byte llm.c header (truncated or not a shard)");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw Error("cannot mmap data shard " + path + ": " + std::strerror(errno));
  Shard s{path, map, size, 0, 2};
  auto fail = [&](const std::string& msg) {
    ::munmap(map, size);
    throw Error(path + ": " + msg);
  };
  int32_t header[3];
  std::memcpy(header, map, sizeof(header));
  if (header[0] == kMagicU16 && header[1] == 1) s.token_bytes = 2;
  else if (header[0] == kMagicU32 && header[1] == 7) s.token_bytes = 4;
  else if (header[0] != kMagicU16 && header[0] != kMagicU32)
    fail("wrong magic " + std::to_string(header[0]) + " (expected llm.c's 20240520 or 20240801): not an llm.c token shard");
  else
    fail("unsupported llm.c shard version " + std::to_string(header[1]) + " for magic " + std::to_string(header[0]) +
         " (expected 1 for uint16 or 7 for uint32 tokens)");
  s.n_tokens = header[2];
  const size_t expected = kHeaderBytes + static_cast<size_t>(s.n_tokens) * s.token_bytes;
  if (s.n_tokens < 0 || size != expected)
    fail("header says " + std::to_string(s.n_tokens) + " tokens (" + std::to_string(expected) + " bytes) but the file is " +
         std::to_string(size) + " bytes: the shard is truncated or corrupt; re-create it");
  for (int64_t i = 0; i < s.n_tokens; ++i) {
    const int32_t t = s.token(i);
    if (t < 0 || t >= vocab)
      fail("token " + std::to_string(i) + " has id " + std::to_string(t) + " >= model.vocab_size " + std::to_string(vocab) +
           ": the data was tokenized for a larger vocabulary");
  }
  return s;
}

// Shards concatenated into one stream; a token is found by binary search over the shard starts.
class LlmcCorpus final : public TokenCorpus {
 public:
  explicit LlmcCorpus(std::vector<Shard> shards) : shards_(std::move(shards)) {
    for (const Shard& s : shards_) starts_.push_back(total_), total_ += s.n_tokens;
  }
  ~LlmcCorpus() override {
    for (Shard& s : shards_) ::munmap(const_cast<void*>(s.map), s.map_bytes);
  }
  int64_t size() const override { return total_; }
  int32_t token(int64_t i) const override {
    const size_t k = std::upper_bound(starts_.begin(), starts_.end(), i) - starts_.begin() - 1;
    return shards_[k].token(i - starts_[k]);
  }
  int64_t documents() const override { return -1; }
  std::string describe() const override {
    return "llm.c shards: " + std::to_string(shards_.size()) + " file(s), " + std::to_string(total_) + " tokens (" +
           (shards_.front().token_bytes == 2 ? "uint16" : "uint32") + ")";
  }

 private:
  std::vector<Shard> shards_;
  std::vector<int64_t> starts_;
  int64_t total_ = 0;
};

}  // namespace

std::unique_ptr<TokenCorpus> open_llmc_corpus(const std::vector<std::string>& paths, int64_t vocab) {
  std::vector<Shard> shards;
  try {
    for (const std::string& p : paths) shards.push_back(open_shard(p, vocab));
  } catch (...) {
    for (Shard& s : shards) ::munmap(const_cast<void*>(s.map), s.map_bytes);
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
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write " + path);
  f.write(reinterpret_cast<const char*>(header), sizeof(header));
  for (int32_t t : tokens) {
    if (small) {
      const uint16_t v = static_cast<uint16_t>(t);
      f.write(reinterpret_cast<const char*>(&v), 2);
    } else {
      f.write(reinterpret_cast<const char*>(&t), 4);
    }
  }
  if (!f) throw Error("failed writing " + path);
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
