#include "llamatron/checkpoint_format.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "llamatron/checked.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/model.h"
#include "llamatron/tensor_parallel.h"

namespace llamatron {
using nlohmann::json;

namespace {

constexpr int64_t kMaxRanks = int64_t{1} << 20;
// Counters a run can reach: 2^53 steps or tokens is far beyond any run and exact in a double.
constexpr int64_t kMaxCount = int64_t{1} << 53;

std::string hex16(uint64_t h) {
  char b[17];
  std::snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(h));
  return b;
}

// rank_RRRRR.safetensors, five digits.
bool is_rank_file(const std::string& name, int* rank) {
  const std::string head = "rank_", tail = ".safetensors";
  if (name.size() != head.size() + 5 + tail.size() || name.compare(0, head.size(), head) != 0 ||
      name.compare(head.size() + 5, tail.size(), tail) != 0 ||
      !std::all_of(name.begin() + 5, name.begin() + 10, [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  *rank = std::stoi(name.substr(5, 5));
  return true;
}

}  // namespace

uint64_t fnv1a64(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

uint64_t file_fnv1a64(const std::string& path, uint64_t basis) {
  const OpenedFile f = open_regular_file(path, "checkpoint file");
  std::vector<char> buf(1 << 20);
  uint64_t h = basis;
  for (;;) {
    const ssize_t n = ::read(f.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(f.fd);
      throw Error("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    h = fnv1a64({buf.data(), static_cast<size_t>(n)}, h);
  }
  ::close(f.fd);
  return h;
}

int Manifest::rank_files() const {
  int n = 0, r = 0;
  for (const ManifestFile& f : files) n += is_rank_file(f.name, &r);
  return n;
}

Manifest parse_manifest(std::string_view text, const std::string& where) {
  const json j = parse_json_strictly(text, where);
  const JsonObject top(j, where);
  top.only({"step", "files"});
  Manifest m;
  m.step = top.integer("step", 0, kMaxCount);
  const json& files = top.array("files");
  std::set<std::string> names;
  std::set<int> ranks;
  for (size_t i = 0; i < files.size(); ++i) {
    const JsonObject f(files[i], where + ": files[" + std::to_string(i) + "]");
    ManifestFile e;
    e.name = f.string("name");
    int rank = 0;
    // Names are plain file names of this format: nothing outside the directory is ever opened.
    if (e.name != "trainer.json" && e.name != "config.yaml" && !is_rank_file(e.name, &rank))
      f.fail("name", "is " + json_brief(json(e.name)) + ", expected rank_RRRRR.safetensors, trainer.json or config.yaml");
    if (!names.insert(e.name).second) f.fail("name", "\"" + e.name + "\" is listed twice");
    if (is_rank_file(e.name, &rank)) ranks.insert(rank);
    e.bytes = static_cast<uint64_t>(f.integer("bytes", 0, std::numeric_limits<int64_t>::max()));
    e.legacy_checksum = !f.has("fnv1a64");
    const std::string key = e.legacy_checksum ? "fnv1a" : "fnv1a64";
    const std::string hex = f.string(key);
    if (hex.size() != 16 || !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; })) f.fail(key, "is \"" + hex + "\", expected 16 hex digits");
    e.checksum = std::stoull(hex, nullptr, 16);
    f.only({"name", "bytes", key.c_str()});
    m.files.push_back(e);
  }
  for (const char* need : {"trainer.json", "config.yaml"})
    if (!names.count(need)) throw Error(where + ": lists no " + need + ": not a complete checkpoint");
  if (ranks.empty()) throw Error(where + ": lists no rank files: not a complete checkpoint");
  if (*ranks.rbegin() != static_cast<int>(ranks.size()) - 1)
    throw Error(where + ": the rank files listed are not rank_00000 .. rank_" + std::to_string(ranks.size() - 1) + ": a rank file is missing");
  return m;
}

std::string manifest_json(const Manifest& m) {
  json files = json::array();
  for (const ManifestFile& f : m.files) files.push_back({{"name", f.name}, {"bytes", f.bytes}, {"fnv1a64", hex16(f.checksum)}});
  return json{{"step", m.step}, {"files", files}}.dump(2);
}

ModelConfig TrainerState::model_config() const {
  RunConfig c;
  for (const auto& [k, v] : model) set_config_key(c, k, v);
  c.model.validate();
  return c.model;
}

TrainerState parse_trainer_state(std::string_view text, const std::string& where) {
  const json j = parse_json_strictly(text, where);
  const JsonObject top(j, where);
  top.only({"format", "version", "step", "tokens_seen", "data_position", "optimizer_steps", "layout", "precision", "model"});
  top.one_of("format", {"llamatron checkpoint"});
  top.integer("version", 1, 1);
  TrainerState s;
  s.step = top.integer("step", 0, kMaxCount);
  s.tokens_seen = top.integer("tokens_seen", 0, kMaxCount);
  // Every sample has at least one token; the position indexes the data stream, so it must be real.
  s.data_position = top.integer("data_position", 0, s.tokens_seen);
  // Skipped steps take no optimizer step, so there are never more of them than steps.
  s.optimizer_steps = top.integer("optimizer_steps", 0, s.step);
  const JsonObject layout = top.object("layout");
  layout.only({"tensor_parallel", "pipeline_parallel", "data_parallel"});
  s.tp = layout.integer("tensor_parallel", 1, kMaxRanks);
  s.pp = layout.integer("pipeline_parallel", 1, kMaxRanks);
  s.dp = layout.integer("data_parallel", 1, kMaxRanks);
  if (s.tp * s.pp * s.dp > kMaxRanks) layout.fail("data_parallel", "makes a layout of more than 2^20 ranks");
  s.precision = top.one_of("precision", {"bf16", "fp32"});
  const JsonObject model = top.object("model");
  RunConfig defaults;
  for (const auto& [k, v] : config_values(defaults)) {
    if (k.rfind("model.", 0) != 0) continue;
    s.model[k] = model.string(k);
  }
  for (const auto& [k, v] : j.at("model").items())
    if (!s.model.count(k)) model.fail(k, "is not a model config key");
  try {
    (void)s.model_config();
  } catch (const Error& e) {
    throw Error(where + ": model: " + e.what());
  }
  return s;
}

std::string trainer_state_json(const TrainerState& s) {
  json model = json::object();
  for (const auto& [k, v] : s.model) model[k] = v;
  return json{{"format", "llamatron checkpoint"},
              {"version", 1},
              {"step", s.step},
              {"tokens_seen", s.tokens_seen},
              {"data_position", s.data_position},
              {"optimizer_steps", s.optimizer_steps},
              {"layout", {{"tensor_parallel", s.tp}, {"pipeline_parallel", s.pp}, {"data_parallel", s.dp}}},
              {"precision", s.precision},
              {"model", model}}
      .dump(2);
}

std::string pieces_json(const std::vector<CheckpointPiece>& pieces) {
  json out = json::array();
  for (const CheckpointPiece& p : pieces)
    out.push_back({{"param", p.param}, {"local_shape", p.local_shape}, {"global_shape", p.global_shape}, {"split_dim", p.split_dim},
                   {"split_offset", p.split_offset}, {"begin", p.begin}, {"end", p.end}});
  return out.dump();
}

std::map<std::string, ParamTarget> param_targets(const ModelConfig& m, int64_t saved_tp) {
  std::map<std::string, ParamTarget> out;
  for (const ParamSpec& s : llama_param_specs(m))
    out[s.name] = {s.shape, s.is_embedding ? padded_vocab(m.vocab_size, saved_tp) - m.vocab_size : 0};
  return out;
}

namespace {

// One piece's fields, checked against its parameter's target and the tensors of its file.
CheckpointPiece check_piece(const JsonObject& p, const std::map<std::string, ParamTarget>& targets, const SafetensorsFile& file) {
  p.only({"param", "local_shape", "global_shape", "split_dim", "split_offset", "begin", "end"});
  CheckpointPiece c;
  c.param = p.string("param");
  auto t = targets.find(c.param);
  if (t == targets.end()) p.fail("param", "is \"" + c.param + "\", which is not a parameter of this model (a checkpoint of another model?)");
  const Shape& g = t->second.global_shape;
  const int64_t max_dim = std::numeric_limits<int32_t>::max();
  c.global_shape = p.integers("global_shape", 1, 2, 1, max_dim);
  if (c.global_shape != g) p.fail("global_shape", "is " + shape_str(c.global_shape) + ", but the model's " + c.param + " is " + shape_str(g));
  c.local_shape = p.integers("local_shape", g.size(), g.size(), 1, max_dim);
  c.split_dim = static_cast<int>(p.integer("split_dim", -1, g.size() > 1 ? 1 : -1));  // vectors are never split
  c.split_offset = p.integer("split_offset", 0, max_dim);
  const Shape& l = c.local_shape;
  if (c.split_dim < 0) {
    if (l != g || c.split_offset != 0) p.fail("local_shape", "is " + shape_str(l) + " at offset " + std::to_string(c.split_offset) +
                                                              ", but an unsplit piece is the whole " + shape_str(g));
  } else {
    const int d = c.split_dim, other = 1 - d;
    const int64_t room = g[d] + (d == 0 ? t->second.row_padding : 0);
    if (l[other] != g[other] || c.split_offset + l[d] > room)
      p.fail("local_shape", "is " + shape_str(l) + " at offset " + std::to_string(c.split_offset) + " along dimension " + std::to_string(d) +
                                ", which does not fit in " + c.param + " " + shape_str(g) +
                                (t->second.row_padding ? " (+" + std::to_string(t->second.row_padding) + " padding rows)" : ""));
  }
  const int64_t local_numel = *checked_numel(l);  // dims < 2^31, rank <= 2
  c.begin = p.integer("begin", 0, local_numel - 1);
  c.end = p.integer("end", c.begin + 1, local_numel);
  for (const char* kind : CheckpointPieces::kKinds) {
    const std::string name = std::string(kind) + "/" + c.param + "/" + std::to_string(c.begin);
    auto e = file.tensors.find(name);
    if (e == file.tensors.end()) throw Error(p.where() + ": its tensor " + name + " is not in the file");
    if (e->second.dtype != "F32" || e->second.numel() != c.end - c.begin)
      throw Error(p.where() + ": its tensor " + name + " is " + e->second.dtype + " " + shape_str(e->second.shape) + ", expected F32 [" +
                  std::to_string(c.end - c.begin) + "] (end - begin)");
  }
  return c;
}

}  // namespace

CheckpointPieces::CheckpointPieces(std::vector<SafetensorsFile> files, std::map<std::string, ParamTarget> targets, std::string dir)
    : files_(std::move(files)), targets_(std::move(targets)), dir_(std::move(dir)) {
  for (const SafetensorsFile& file : files_) {
    auto meta = file.metadata.find("pieces");
    if (meta == file.metadata.end()) throw Error(file.path + ": no \"pieces\" metadata: not a llamatron checkpoint rank file");
    const json pieces = parse_json_strictly(meta->second, file.path + ": pieces");
    if (!pieces.is_array()) throw Error(file.path + ": the \"pieces\" metadata is not a list");
    for (size_t i = 0; i < pieces.size(); ++i) {
      const JsonObject p(pieces[i], file.path + ": pieces[" + std::to_string(i) + "]");
      CheckpointPiece c = check_piece(p, targets_, file);
      index_[c.param].push_back({std::move(c), &file});
    }
  }
}

std::vector<float> CheckpointPieces::assemble(const std::string& kind, const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("checkpoint " + dir_ + " has no " + name + " (a rank file is missing, or another model)");
  const Shape& g = targets_.at(name).global_shape;
  const int64_t rows = g[0], cols = g.size() > 1 ? g[1] : 1;
  std::vector<float> out(static_cast<size_t>(rows * cols));
  std::vector<char> covered(out.size(), 0);
  for (const auto& [p, file] : it->second) {
    const float* v = reinterpret_cast<const float*>(file->at(kind + "/" + name + "/" + std::to_string(p.begin)).bytes.data());
    const int64_t local_cols = p.local_shape.size() > 1 ? p.local_shape[1] : p.local_shape[0];
    for (int64_t k = p.begin; k < p.end; ++k) {
      int64_t at = k;
      if (g.size() > 1) {
        const int64_t i = k / local_cols, j = k % local_cols;
        const int64_t gi = p.split_dim == 0 ? p.split_offset + i : i, gj = p.split_dim == 1 ? p.split_offset + j : j;
        if (gi >= rows) continue;  // vocabulary padding
        at = gi * cols + gj;
      }
      std::memcpy(&out[at], v + (k - p.begin), sizeof(float));
      covered[at] = 1;
    }
  }
  if (std::find(covered.begin(), covered.end(), 0) != covered.end())
    throw Error("checkpoint " + dir_ + ": parts of " + name + " are in no rank file (a rank file is missing)");
  return out;
}

}  // namespace llamatron
