// Data preparation without Python: raw text or JSONL (a "text" field) -> token shards, with the
// built-in byte-level tokenizer (ids 0-255 are the UTF-8 bytes, 256 is EOS: vocab_size >= 257).
// Hugging Face tokenizers go through tools/prepare_hf.py, which writes the same formats.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace llamatron {

constexpr int32_t kByteEos = 256;
constexpr int64_t kByteVocab = 257;

// The documents of one input file: a .jsonl file holds one JSON object per line with a string
// "text" field; any other file is one document. Errors name the file (and the line).
std::vector<std::string> read_documents(const std::string& path);
// UTF-8 bytes, then EOS.
std::vector<int32_t> byte_tokenize(const std::string& document);

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out_dir, name = "data";
  bool llmc = true, megatron = false;
  int64_t shard_tokens = 100'000'000;  // llm.c shard size
  int threads = 0;                     // 0: all cores
};
struct PrepareResult {
  int64_t documents = 0, tokens = 0;
  std::vector<std::string> files;
};
// Tokenizes the inputs in parallel (one file per task; the output order is the input order),
// calling progress(files done, files total, tokens so far) as files finish, and writes
// out_dir/name_000000.bin ... (llm.c) and/or out_dir/name.bin + name.idx (Megatron).
PrepareResult prepare_data(const PrepareOptions& opts, const std::function<void(int, int, int64_t)>& progress = {});

// `llamatron data inspect PATH`: format, dtype, tokens, documents and the first tokens of an
// llm.c shard or a Megatron dataset (prefix, .bin or .idx).
std::string inspect_data(const std::string& path, int64_t first_tokens = 16);

}  // namespace llamatron
