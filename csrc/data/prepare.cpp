#include "llamatron/prepare.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "llamatron/data.h"
#include "llamatron/documents.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"

namespace llamatron {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A whole input file (a regular file: a FIFO would block); inputs are read whole, so bounded.
std::string slurp(const std::string& path) { return read_small_file(path, "input file", uint64_t{16} << 30); }

}  // namespace

std::vector<std::string> read_documents(const std::string& path) {
  const std::string text = slurp(path);
  if (!ends_with(path, ".jsonl")) return text.empty() ? std::vector<std::string>{} : std::vector<std::string>{text};
  std::vector<std::string> docs;
  std::istringstream lines(text);
  int64_t n = 0;
  for (std::string line; std::getline(lines, line);) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw Error(path + ":" + std::to_string(n) + ": not a JSON object: each line of a .jsonl file is one {\"text\": ...} document");
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw Error(path + ":" + std::to_string(n) + ": no string \"text\" field: each line of a .jsonl file is one {\"text\": ...} document");
    docs.push_back(j["text"].get<std::string>());
  }
  return docs;
}

std::vector<int32_t> byte_tokenize(const std::string& document) {
  std::vector<int32_t> ids(document.begin(), document.end());
  for (int32_t& t : ids) t &= 0xff;  // char may be signed
  ids.push_back(kByteEos);
  return ids;
}

PrepareResult prepare_data(const PrepareOptions& o, const std::function<void(int, int, int64_t)>& progress) {
  if (o.inputs.empty()) throw Error("no input files: give text (.txt) or JSONL (.jsonl) files to prepare");
  for (const std::string& in : o.inputs)
    if (!std::filesystem::is_regular_file(in)) throw Error("input file " + in + " does not exist: check the path");
  if (o.shard_tokens < 1) throw Error("--shard-tokens must be positive");
  std::error_code ec;  // the output directory first: a bad --out fails before any work
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec || !std::filesystem::is_directory(o.out_dir))
    throw Error("cannot create the output directory " + o.out_dir + ": " + (ec ? ec.message() : "a file is in the way") + ": check --out");
  // Tokenize: one task per file, results kept in input order (the output never depends on threads).
  std::vector<std::vector<std::vector<int32_t>>> per_file(o.inputs.size());
  std::atomic<size_t> next{0};
  std::atomic<int> done{0};
  std::atomic<int64_t> tokens{0};
  std::mutex mu;
  std::string first_error;
  const int threads = std::max(1, std::min<int>(o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()),
                                                static_cast<int>(o.inputs.size())));
  std::vector<std::thread> pool;
  for (int w = 0; w < threads; ++w)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < o.inputs.size();) {
        try {
          for (const std::string& doc : read_documents(o.inputs[i])) {
            per_file[i].push_back(byte_tokenize(doc));
            tokens += static_cast<int64_t>(per_file[i].back().size());
          }
        } catch (const Error& e) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) first_error = e.what();
        }
        const int d = ++done;
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          progress(d, static_cast<int>(o.inputs.size()), tokens.load());
        }
      }
    });
  for (std::thread& t : pool) t.join();
  if (!first_error.empty()) throw Error(first_error);

  std::vector<std::vector<int32_t>> docs;
  for (auto& f : per_file)
    for (auto& d : f) docs.push_back(std::move(d));
  PrepareResult r;
  r.documents = static_cast<int64_t>(docs.size());
  r.tokens = tokens.load();
  if (docs.empty()) throw Error("the inputs hold no documents (empty files): nothing to prepare");
  const std::filesystem::path base = std::filesystem::path(o.out_dir) / o.name;
  if (o.llmc) {
    std::vector<int32_t> shard;
    const auto flush = [&] {
      char suffix[16];
      std::snprintf(suffix, sizeof(suffix), "_%06zu.bin", r.files.size());
      r.files.push_back(base.string() + suffix);
      write_llmc_shard(r.files.back(), shard);
      shard.clear();
    };
    for (const auto& d : docs)
      for (int32_t t : d) {
        shard.push_back(t);
        if (static_cast<int64_t>(shard.size()) == o.shard_tokens) flush();
      }
    if (!shard.empty()) flush();
  }
  if (o.megatron) {
    write_megatron(base.string(), docs);
    r.files.push_back(base.string() + ".bin");
    r.files.push_back(base.string() + ".idx");
  }
  // Beside the files: their end-of-document id, the default of data.eod_id (documents.h).
  write_dataset_record(o.out_dir, o.name, "llamatron byte-level", kByteEos, r.files);
  return r;
}

std::string inspect_data(const std::string& path, int64_t first_tokens) {
  const bool megatron = ends_with(path, ".idx") || (!ends_with(path, ".bin") && std::filesystem::exists(path + ".idx")) ||
                        (ends_with(path, ".bin") && std::filesystem::exists(path.substr(0, path.size() - 4) + ".idx"));
  const int64_t any_vocab = 0;  // inspecting: every id is allowed
  std::unique_ptr<TokenCorpus> c = megatron ? open_megatron_corpus(path, any_vocab) : open_llmc_corpus({path}, any_vocab);
  std::ostringstream s;
  s << "format:    " << (megatron ? "Megatron indexed dataset" : "llm.c token shard") << "\n";
  s << "data:      " << c->describe() << "\n";
  s << "tokens:    " << c->size() << "\n";
  s << "documents: " << (c->documents() >= 0 ? std::to_string(c->documents()) : "not recorded (llm.c shards)") << "\n";
  int64_t top = -1, lowest = 0;
  for (int64_t i = 0; i < c->size(); ++i) top = std::max(top, c->id(i)), lowest = std::min(lowest, c->id(i));
  if (lowest < 0)
    s << "max id:    " << top << " (and negative ids down to " << lowest << ": not token ids; this data cannot be trained on)\n";
  else
    s << "max id:    " << top << " (model.vocab_size must be > this, at least " << top + 1 << ")\n";
  s << "first:    ";
  for (int64_t i = 0; i < std::min(first_tokens, c->size()); ++i) s << " " << c->id(i);
  s << "\n";
  return s.str();
}

}  // namespace llamatron
