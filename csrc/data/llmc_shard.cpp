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
}  // namespace

int32_t LlmcShardSource::Shard::token(int64_t i) const {
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

LlmcShardSource::Shard open_llmc_shard(const std::string& path, int64_t vocab) {
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
  LlmcShardSource::Shard s{path, map, size, 0, 2};
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

LlmcShardSource::LlmcShardSource(const std::vector<std::string>& paths, int64_t vocab, int64_t seq) {
  int64_t total = 0;
  try {
    for (const std::string& p : paths) {
      shards_.push_back(open_llmc_shard(p, vocab));
      total += shards_.back().n_tokens;
    }
  } catch (...) {
    for (Shard& s : shards_) ::munmap(const_cast<void*>(s.map), s.map_bytes);
    throw;
  }
  const bool any_fits = std::any_of(shards_.begin(), shards_.end(), [&](const Shard& s) { return s.n_tokens >= seq + 1; });
  if (!any_fits) {
    for (Shard& s : shards_) ::munmap(const_cast<void*>(s.map), s.map_bytes);
    throw Error("the data shards hold " + std::to_string(total) + " tokens and none has seq_len + 1 = " + std::to_string(seq + 1) +
                ": use a shorter train.seq_len or more data");
  }
}

LlmcShardSource::~LlmcShardSource() {
  for (Shard& s : shards_) ::munmap(const_cast<void*>(s.map), s.map_bytes);
}

void LlmcShardSource::next_batch(int64_t batch, int64_t seq, int32_t* tokens) {
  for (int64_t b = 0; b < batch; ++b) {
    while (pos_ + seq + 1 > shards_[shard_].n_tokens) {  // move on to a shard with a full window left
      pos_ = 0;
      if (++shard_ == shards_.size()) shard_ = 0, ++epoch_;
    }
    for (int64_t t = 0; t <= seq; ++t) tokens[b * (seq + 1) + t] = shards_[shard_].token(pos_ + t);
    pos_ += seq;
  }
}

std::string LlmcShardSource::describe() const {
  int64_t total = 0;
  for (const Shard& s : shards_) total += s.n_tokens;
  return "llm.c shards: " + std::to_string(shards_.size()) + " file(s), " + std::to_string(total) + " tokens";
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

std::unique_ptr<TokenSource> make_token_source(const RunConfig& c) {
  if (c.data.source == "llmc")
    return std::make_unique<LlmcShardSource>(expand_paths(c.data.paths), c.model.vocab_size, c.train.seq_len);
  return std::make_unique<MarkovSource>(c.model.vocab_size, c.data.markov_order, c.data.markov_branching, c.data.markov_seed,
                                        mix_seed(c.train.seed, 2));
}

}  // namespace llamatron
