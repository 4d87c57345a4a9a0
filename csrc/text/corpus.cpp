#include "llamatron/corpus.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <simdjson.h>
#include <zlib.h>
#include <zstd.h>

#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/utf8.h"

namespace llamatron {
namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}
enum class Kind { Text, Jsonl, Gzip, Zstd, Unknown };
Kind kind_of(const std::string& path) {
  if (ends_with(path, ".jsonl.gz")) return Kind::Gzip;
  if (ends_with(path, ".jsonl.zst")) return Kind::Zstd;
  if (ends_with(path, ".jsonl")) return Kind::Jsonl;
  if (ends_with(path, ".txt")) return Kind::Text;
  return Kind::Unknown;
}

constexpr size_t kChunk = 1 << 20;

}  // namespace

// Decompressed bytes of one .jsonl[.gz|.zst] file, a chunk at a time.
class CorpusReader::Stream {
 public:
  Stream(const std::string& path, Kind kind) : path_(path), kind_(kind) {
    OpenedFile f = open_regular_file(path, "input file");
    if (kind_ == Kind::Gzip) {
      gz_ = gzdopen(f.fd, "rb");
      if (!gz_) ::close(f.fd), throw Error("cannot read input file " + path + ": " + std::strerror(errno));
      gzbuffer(gz_, kChunk);
    } else {
      fd_ = f.fd;
      if (kind_ == Kind::Zstd) zstd_ = ZSTD_createDCtx(), in_.resize(ZSTD_DStreamInSize());
    }
  }
  ~Stream() {
    if (gz_) gzclose(gz_);
    if (fd_ >= 0) ::close(fd_);
    if (zstd_) ZSTD_freeDCtx(zstd_);
  }
  // Appends up to kChunk bytes to out; false at the end of the file.
  bool read(std::string& out) {
    const size_t at = out.size();
    out.resize(at + kChunk);
    const size_t got = kind_ == Kind::Gzip ? read_gzip(&out[at]) : kind_ == Kind::Zstd ? read_zstd(&out[at]) : read_raw(&out[at], kChunk);
    out.resize(at + got);
    return got > 0;
  }

 private:
  size_t read_raw(char* dst, size_t n) {
    for (;;) {
      const ssize_t r = ::read(fd_, dst, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) throw Error("cannot read input file " + path_ + ": " + std::strerror(errno));
    }
  }
  size_t read_gzip(char* dst) {
    const int r = gzread(gz_, dst, kChunk);
    int err = Z_OK;
    const char* msg = gzerror(gz_, &err);
    if (r < 0 || (err != Z_OK && err != Z_BUF_ERROR))
      throw Error("input file " + path_ + " is not a complete gzip stream (" + msg + "): check the file");
    // zlib accepts a truncated stream silently at its end: Z_BUF_ERROR there means it was cut short.
    if (r == 0 && err == Z_BUF_ERROR) throw Error("input file " + path_ + " is not a complete gzip stream (truncated): check the file");
    return static_cast<size_t>(r);
  }
  size_t read_zstd(char* dst) {
    ZSTD_outBuffer out{dst, kChunk, 0};
    while (out.pos == 0) {
      if (in_pos_ == in_len_) {
        in_len_ = read_raw(in_.data(), in_.size()), in_pos_ = 0;
        if (in_len_ == 0) {
          if (frame_open_) throw Error("input file " + path_ + " is not a complete zstd stream (truncated): check the file");
          return 0;
        }
      }
      ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
      const size_t r = ZSTD_decompressStream(zstd_, &out, &in);
      if (ZSTD_isError(r))
        throw Error("input file " + path_ + " is not a valid zstd stream (" + ZSTD_getErrorName(r) + "): check the file");
      in_pos_ = in.pos;
      frame_open_ = r != 0;
    }
    return out.pos;
  }
  std::string path_;
  Kind kind_;
  int fd_ = -1;
  gzFile gz_ = nullptr;
  ZSTD_DCtx* zstd_ = nullptr;
  std::vector<char> in_;
  size_t in_len_ = 0, in_pos_ = 0;
  bool frame_open_ = false;
  friend class CorpusReader;
  std::string buf_;  // bytes read but not yet returned as lines
  size_t pos_ = 0;
  bool eof_ = false;
};

void check_corpus_inputs(const std::vector<std::string>& inputs) {
  if (inputs.empty()) throw Error("no input files: give .txt, .jsonl, .jsonl.gz or .jsonl.zst files");
  for (const std::string& in : inputs) {
    if (kind_of(in) == Kind::Unknown)
      throw Error("input file " + in + ": unknown kind: name it .txt (one document), .jsonl, .jsonl.gz or .jsonl.zst (one per line)");
    if (!std::filesystem::is_regular_file(in)) throw Error("input file " + in + " does not exist or is not a file: check the path");
  }
}

CorpusReader::CorpusReader(std::vector<std::string> inputs, bool parse_json) : inputs_(std::move(inputs)), parse_json_(parse_json) {
  check_corpus_inputs(inputs_);
}
CorpusReader::~CorpusReader() = default;

bool CorpusReader::next_line(std::string& line) {
  Stream& s = *stream_;
  for (;;) {
    const size_t nl = s.buf_.find('\n', s.pos_);
    if (nl != std::string::npos || s.eof_) {
      const size_t end = nl == std::string::npos ? s.buf_.size() : nl, from = s.pos_;
      if (end == from && nl == std::string::npos) return false;
      const size_t cr = end > from && s.buf_[end - 1] == '\r';  // a CRLF file's lines end without the CR
      line.assign(s.buf_, from, end - from - cr);
      s.pos_ = nl == std::string::npos ? end : nl + 1;
      ++line_;
      return true;
    }
    s.buf_.erase(0, s.pos_), s.pos_ = 0;
    s.eof_ = !s.read(s.buf_);
  }
}

namespace {

// A .jsonl line -> doc (line and file already set): UTF-8 repaired if need be, then the "text" field.
// Returns "" or the error.
std::string parse_line(Document& doc, bool parse_json) {
  doc.invalid_utf8 = !simdjson::validate_utf8(doc.json.data(), doc.json.size());
  if (doc.invalid_utf8) doc.json = utf8_repair(doc.json);  // JSON must be UTF-8: repaired first, the filter decides
  if (!parse_json) return "";
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (parser.parse(doc.json).get(root) != simdjson::SUCCESS || root.get(obj) != simdjson::SUCCESS)
    return doc.source() + ": not a JSON object: each line of a .jsonl file is one {\"text\": ...} document";
  std::string_view text;
  if (obj["text"].get(text) != simdjson::SUCCESS)
    return doc.source() + ": no string \"text\" field: each line of a .jsonl file is one {\"text\": ...} document";
  doc.text.assign(text);
  return "";
}

}  // namespace

size_t CorpusReader::next_batch(std::vector<Document>& docs) {
  size_t n = 0;
  std::vector<size_t> json;  // the documents read as lines, parsed below
  while (n < docs.size() && file_ < inputs_.size()) {
    const std::string& path = inputs_[file_];
    const Kind kind = kind_of(path);
    Document& doc = docs[n];
    if (kind == Kind::Text) {
      ++file_;
      doc.text = read_small_file(path, "input file", uint64_t{16} << 30);
      if (doc.text.empty()) continue;  // an empty file is no document
      doc.json.clear(), doc.file = path, doc.line = 1;
      doc.invalid_utf8 = !simdjson::validate_utf8(doc.text.data(), doc.text.size());
      if (doc.invalid_utf8) doc.text = utf8_repair(doc.text);
      ++n;
      continue;
    }
    if (!stream_) stream_ = std::make_unique<Stream>(path, kind), line_ = 0;
    if (!next_line(doc.json)) {
      stream_.reset();
      ++file_;
      continue;
    }
    if (doc.json.find_first_not_of(" \t\r") == std::string::npos) continue;
    doc.file = path, doc.line = line_;
    doc.text.clear();
    json.push_back(n++);
  }
  std::vector<std::string> errors(json.size());
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < json.size(); ++i) errors[i] = parse_line(docs[json[i]], parse_json_);
  for (const std::string& e : errors)  // the first bad line in input order
    if (!e.empty()) throw Error(e);
  return n;
}

struct ShardFile {
  CheckedFile file;
  std::string buffer;
  explicit ShardFile(const std::string& path) : file(path, CheckedFile::Truncate, "output shard") {}
  void flush() { file.write(buffer), buffer.clear(); }
};

ShardWriter::ShardWriter(const std::string& out_dir, const std::string& name, int64_t shard_bytes,
                         const std::vector<std::string>& extra_files)
    : out_dir_(out_dir), name_(name), shard_bytes_(shard_bytes) {
  namespace fs = std::filesystem;
  if (shard_bytes_ < 1) throw Error("--shard-bytes must be positive");
  std::error_code ec;
  fs::create_directories(out_dir_, ec);
  if (ec || !fs::is_directory(out_dir_))
    throw Error("cannot create the output directory " + out_dir_ + ": " + (ec ? ec.message() : "a file is in the way") + ": check --out");
  for (const auto& e : fs::directory_iterator(out_dir_)) {
    const std::string f = e.path().filename().string();
    bool ours = f.rfind(name_ + "_", 0) == 0 && ends_with(f, ".jsonl");
    for (const std::string& x : extra_files) ours = ours || f == x;
    if (ours) throw Error("the output directory " + out_dir_ + " already holds " + f + " from an earlier run: choose an empty --out (nothing is overwritten)");
  }
  tmp_dir_ = (fs::path(out_dir_) / ("." + name_ + ".tmp-" + std::to_string(::getpid()))).string();
  fs::remove_all(tmp_dir_, ec);
  fs::create_directory(tmp_dir_, ec);
  if (ec) throw Error("cannot create " + tmp_dir_ + ": " + ec.message() + ": check --out");
}

ShardWriter::~ShardWriter() {
  file_.reset();
  std::error_code ec;
  if (!committed_) std::filesystem::remove_all(tmp_dir_, ec);
}

void ShardWriter::open_shard() {
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "_%06zu.jsonl", shards_.size());
  shards_.push_back(name_ + suffix);
  file_ = std::make_unique<ShardFile>(tmp_dir_ + "/" + shards_.back());
  written_ = 0;
}

void ShardWriter::write(const Document& doc) {
  if (!file_ || written_ >= shard_bytes_) {
    if (file_) file_->flush(), file_->file.close(true);
    open_shard();
  }
  std::string& b = file_->buffer;
  const size_t before = b.size();
  if (doc.json.empty()) {
    b += nlohmann::json{{"text", doc.text}, {"source", doc.file}}.dump();
  } else {
    b += doc.json;
  }
  b += '\n';
  written_ += static_cast<int64_t>(b.size() - before);
  if (b.size() >= kChunk) file_->flush();
}

std::string ShardWriter::extra_path(const std::string& file_name) {
  extras_.push_back(file_name);
  return tmp_dir_ + "/" + file_name;
}

void ShardWriter::write_extra(const std::string& file_name, const std::string& contents) {
  write_file_durably(tmp_dir_ + "/" + file_name, contents);
  extras_.push_back(file_name);
}

std::vector<std::string> ShardWriter::commit() {
  namespace fs = std::filesystem;
  if (file_) file_->flush(), file_->file.close(true), file_.reset();
  sync_directory(tmp_dir_);
  std::vector<std::string> out;
  std::vector<std::string> all = shards_;
  all.insert(all.end(), extras_.begin(), extras_.end());
  for (const std::string& f : all) {
    std::error_code ec;
    fs::rename(fs::path(tmp_dir_) / f, fs::path(out_dir_) / f, ec);
    if (ec) throw Error("cannot move " + f + " into " + out_dir_ + ": " + ec.message());
  }
  for (const std::string& f : shards_) out.push_back((fs::path(out_dir_) / f).string());
  committed_ = true;
  std::error_code ec;
  fs::remove_all(tmp_dir_, ec);
  sync_directory(out_dir_);
  return out;
}

}  // namespace llamatron
