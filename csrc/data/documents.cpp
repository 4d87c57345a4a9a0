// Document boundaries inside packed windows (include/llamatron/documents.h) and the record of the
// tokenizer's end-of-document id that data preparation leaves beside its files.
#include "llamatron/documents.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "llamatron/config.h"
#include "llamatron/data.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"

namespace llamatron {

Documents find_documents(const int32_t* tokens, int64_t B, int64_t T, int64_t stride, const DocumentRules& r) {
  Documents d;
  if (r.reset_attention_mask) d.starts.resize(static_cast<size_t>(B * T));
  if (r.reset_position_ids) d.positions.resize(static_cast<size_t>(B * T));
  if (!r.reset_attention_mask && !r.reset_position_ids) return d;
  for (int64_t b = 0; b < B; ++b) {
    int32_t start = 0;  // 1 + the last eod before t
    for (int64_t t = 0; t < T; ++t) {
      if (t > 0 && tokens[b * stride + t - 1] == r.eod_id) start = static_cast<int32_t>(t);
      if (r.reset_attention_mask) d.starts[b * T + t] = start;
      if (r.reset_position_ids) d.positions[b * T + t] = static_cast<int32_t>(t) - start;
    }
  }
  return d;
}

namespace {

std::string record_path(const std::string& out_dir, const std::string& name) {
  return (std::filesystem::path(out_dir) / (name + ".dataset.json")).string();
}

// The eod id recorded for a data file, or -1: a `*.dataset.json` in its directory lists it.
int64_t recorded_eod(const std::filesystem::path& file) {
  std::error_code ec;
  const std::filesystem::path dir = file.parent_path().empty() ? "." : file.parent_path();
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() < 13 || n.compare(n.size() - 13, 13, ".dataset.json") != 0) continue;
    std::ifstream in(e.path());
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("files") || !j["files"].is_array() || !j.contains("eod_id") || !j["eod_id"].is_number_integer())
      continue;
    for (const auto& f : j["files"])
      if (f.is_string() && f.get<std::string>() == file.filename().string()) return j["eod_id"].get<int64_t>();
  }
  return -1;
}

}  // namespace

void write_dataset_record(const std::string& out_dir, const std::string& name, const std::string& tokenizer, int32_t eod_id,
                          const std::vector<std::string>& files) {
  nlohmann::json j = {{"tokenizer", tokenizer}, {"eod_id", eod_id}, {"files", nlohmann::json::array()}};
  for (const std::string& f : files) j["files"].push_back(std::filesystem::path(f).filename().string());
  write_file_durably(record_path(out_dir, name), j.dump(2) + "\n");
}

DocumentRules document_rules(const DataConfig& data) {
  DocumentRules r{static_cast<int32_t>(data.eod_id), data.reset_attention_mask, data.reset_position_ids, data.eod_mask_loss};
  if (!r.any() || data.eod_id >= 0) return r;
  const std::string fix = "set data.eod_id to the end-of-document token id of the data's tokenizer";
  if (data.source == "synthetic") throw Error("the document switches need data.eod_id with synthetic data (it has no documents): " + fix);
  std::vector<std::string> files;
  for (const std::string& p : data.source == "megatron" ? data.paths : expand_paths(data.paths))
    files.push_back(data.source == "megatron" ? p + ".bin" : p);
  std::map<int64_t, std::string> seen;  // eod id -> a file that has it
  for (const std::string& f : files) {
    const int64_t eod = recorded_eod(f);
    if (eod < 0)
      throw Error("data.reset_attention_mask / reset_position_ids / eod_mask_loss need the end-of-document id, and " + f +
                  " has no record of one (none of the *.dataset.json files that `llamatron data prepare` writes lists it): " + fix);
    seen.emplace(eod, f);
  }
  if (seen.size() > 1)
    throw Error("the data files record different end-of-document ids (" + std::to_string(seen.begin()->first) + " for " +
                seen.begin()->second + ", " + std::to_string(seen.rbegin()->first) + " for " + seen.rbegin()->second + "): " + fix);
  r.eod_id = static_cast<int32_t>(seen.begin()->first);
  return r;
}

}  // namespace llamatron
