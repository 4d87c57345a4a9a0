// Raw text corpora as `llamatron data filter` and `data dedup` read and write them (docs/data.md):
// documents streamed one at a time from .txt (a file is one document), .jsonl (one JSON object per
// line with a string "text" field; other fields are kept), .jsonl.gz (zlib) and .jsonl.zst (libzstd),
// and kept documents written as .jsonl shards under a temporary name that only becomes the output
// when everything is written.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llamatron {

struct Document {
  std::string text;
  std::string json;  // the input line (.jsonl; repaired if need be), "" for a .txt file
  std::string file;
  int64_t line = 0;  // 1-based line of a .jsonl file; 1 for a .txt file
  // The input was not valid UTF-8: text (and json) have each ill-formed sequence replaced by U+FFFD.
  bool invalid_utf8 = false;
  std::string source() const { return file + ":" + std::to_string(line); }
};

// Reads the inputs in order, a batch at a time: lines are split off serially, their JSON parsed
// (simdjson) and UTF-8 checked in parallel. Every error names the file (and line): a missing or
// unreadable file, a corrupt .gz or .zst stream, a line that is not a JSON object or has no string
// "text" field. With parse_json = false (a second pass over inputs already read), a .jsonl line's text
// is not extracted: doc.text stays empty, doc.json is the (repaired) line.
class CorpusReader {
 public:
  explicit CorpusReader(std::vector<std::string> inputs, bool parse_json = true);
  ~CorpusReader();
  CorpusReader(const CorpusReader&) = delete;
  CorpusReader& operator=(const CorpusReader&) = delete;
  // Fills docs[0..n) with the next n <= docs.size() documents; 0 after the last one.
  size_t next_batch(std::vector<Document>& docs);

 private:
  class Stream;
  bool next_line(std::string& line);
  std::vector<std::string> inputs_;
  bool parse_json_;
  size_t file_ = 0;
  int64_t line_ = 0;
  std::unique_ptr<Stream> stream_;
};

// Checks that every input exists and has a known extension before any work starts.
void check_corpus_inputs(const std::vector<std::string>& inputs);

// Kept documents as out_dir/NAME_000000.jsonl, ...: each line the input's JSON line (with its fields
// in their order) or, for a .txt input, {"text": ..., "source": FILE}. Written
// into out_dir/.NAME.tmp-PID/ and moved into out_dir by commit(); destroyed uncommitted (an error),
// it removes what it wrote, so out_dir never holds half an output. Refuses an out_dir that already
// holds NAME_*.jsonl or the report (nothing is overwritten).
class ShardWriter {
 public:
  ShardWriter(const std::string& out_dir, const std::string& name, int64_t shard_bytes, const std::vector<std::string>& extra_files);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  void write(const Document& doc);
  // A file written next to the shards (the report), moved with them.
  void write_extra(const std::string& file_name, const std::string& contents);
  // Where such a file is written in pieces (the caller closes it before commit()).
  std::string extra_path(const std::string& file_name);
  // Moves everything into out_dir; returns the shard paths.
  std::vector<std::string> commit();

 private:
  void open_shard();
  std::string out_dir_, name_, tmp_dir_;
  int64_t shard_bytes_, written_ = 0;
  std::vector<std::string> shards_, extras_;
  std::unique_ptr<struct ShardFile> file_;
  bool committed_ = false;
};

}  // namespace llamatron
