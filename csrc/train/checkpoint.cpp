#include "llamatron/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llamatron/errors.h"
#include "llamatron/model.h"
#include "llamatron/safetensors.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kKinds[3] = {"master", "exp_avg", "exp_avg_sq"};

std::string step_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof(b), "step_%08lld", static_cast<long long>(step));
  return b;
}

// Durability: a file's bytes, and a directory's entries (a rename), reach the disk.
void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open " + p.string() + " to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error("fsync of " + p.string() + " failed: the disk may be full");
}

void write_synced(const fs::path& p, const std::string& text) {
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw Error("cannot write " + p.string() + ": check free space and permissions");
  }
  fsync_path(p);
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

json read_json(const fs::path& p, const std::string& what) {
  try {
    return json::parse(slurp(p));
  } catch (const json::exception& e) {
    throw Error(p.string() + ": not valid JSON (" + what + "): " + e.what());
  }
}

Tensor to_host_f32(const Tensor& t) {
  Tensor h = Tensor::empty(t.shape(), DType::F32);
  h.copy_from(t);
  return h;
}

json model_json(const ModelConfig& m) {
  RunConfig c;
  c.model = m;
  json j;
  for (const auto& [k, v] : config_values(c))
    if (k.rfind("model.", 0) == 0) j[k] = v;
  return j;
}

// The manifest's checks, before anything is read for use.
json verify_manifest(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error("checkpoint " + dir.string() + " does not exist or is not a directory");
  if (!fs::exists(dir / "manifest.json"))
    throw Error("checkpoint " + dir.string() + " has no manifest.json: it is incomplete (an interrupted save?); load an earlier one");
  const json manifest = read_json(dir / "manifest.json", "checkpoint manifest");
  for (const json& f : manifest.at("files")) {
    const fs::path p = dir / f.at("name").get<std::string>();
    if (!fs::exists(p)) throw Error("checkpoint " + dir.string() + ": " + p.filename().string() + " is missing");
    if (fs::file_size(p) != f.at("bytes").get<uint64_t>() || file_checksum(p.string()) != std::stoull(f.at("fnv1a").get<std::string>(), nullptr, 16))
      throw Error("checkpoint " + dir.string() + ": " + p.filename().string() +
                  " is corrupt or truncated (size or checksum differs from the manifest); load an earlier checkpoint");
  }
  return manifest;
}

// The pieces of one parameter in one rank file.
struct Piece {
  const SafetensorsFile* file;
  std::vector<int64_t> local_shape, global_shape;
  int split_dim;
  int64_t split_offset, begin, end;
};

class CheckpointWeights final : public GlobalWeights {
 public:
  explicit CheckpointWeights(const std::string& dir) : dir_(dir) {
    const json manifest = verify_manifest(dir);
    model_ = parse_model(read_json(fs::path(dir) / "trainer.json", "trainer state").at("model"));
    for (const json& f : manifest.at("files")) {
      const std::string name = f.at("name");
      if (name.rfind("rank_", 0) != 0) continue;
      files_.push_back(read_safetensors((fs::path(dir) / name).string()));
    }
    for (const SafetensorsFile& file : files_) {
      const json pieces = json::parse(file.metadata.at("pieces"));
      for (const json& p : pieces)
        index_[p.at("param")].push_back({&file, p.at("local_shape"), p.at("global_shape"), p.at("split_dim"), p.at("split_offset"),
                                         p.at("begin"), p.at("end")});
    }
  }
  std::vector<float> get(const std::string& name) const override { return assemble("master", name); }
  const ModelConfig& model() const override { return model_; }

  // Kind: master | exp_avg | exp_avg_sq. Every element must come from some piece.
  std::vector<float> assemble(const std::string& kind, const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw Error("checkpoint " + dir_ + " has no " + name + " (a rank file is missing, or another model)");
    const std::vector<int64_t>& g = it->second.front().global_shape;
    const int64_t rows = g[0], cols = g.size() > 1 ? g[1] : 1, n = rows * cols;
    std::vector<float> out(n);
    std::vector<char> covered(n, 0);
    for (const Piece& p : it->second) {
      const SafetensorsEntry& e = p.file->at(kind + "/" + name + "/" + std::to_string(p.begin));
      const float* v = reinterpret_cast<const float*>(e.bytes.data());
      const int64_t local_cols = p.local_shape.size() > 1 ? p.local_shape[1] : p.local_shape[0];
      for (int64_t k = p.begin; k < p.end; ++k) {
        int64_t at = k;
        if (g.size() > 1) {
          const int64_t i = k / local_cols, j = k % local_cols;
          const int64_t gi = p.split_dim == 0 ? p.split_offset + i : i, gj = p.split_dim == 1 ? p.split_offset + j : j;
          if (gi >= rows) continue;  // vocabulary padding
          at = gi * cols + gj;
        }
        out[at] = v[k - p.begin];
        covered[at] = 1;
      }
    }
    if (std::find(covered.begin(), covered.end(), 0) != covered.end())
      throw Error("checkpoint " + dir_ + ": parts of " + name + " are in no rank file (a rank file is missing)");
    return out;
  }

 private:
  static ModelConfig parse_model(const json& j) {
    RunConfig c;
    for (const auto& [k, v] : j.items()) set_config_key(c, k, v.get<std::string>());
    c.model.validate();
    return c.model;
  }
  std::string dir_;
  ModelConfig model_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::vector<Piece>> index_;
};

// Each ZeRO-1 piece of this rank: the parameter, and its flat range [a, b) within the local tensor.
struct ShardPiece {
  const ParamSpec* spec;
  int64_t a, b;
  int64_t shard_at;  // where it starts in the shard
};

std::vector<ShardPiece> shard_pieces(const ParamStore& params, const Zero1& z) {
  std::vector<ShardPiece> out;
  const int64_t lo = z.begin(), hi = lo + z.size();
  for (const ParamSpec& s : params.specs()) {
    const int64_t b = std::max(lo, s.offset), e = std::min(hi, s.offset + s.numel());
    if (b < e) out.push_back({&s, b - s.offset, e - s.offset, b - lo});
  }
  return out;
}

}  // namespace

uint64_t file_checksum(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path);
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ull;
  }
  return h;
}

// A save in three phases: snapshot (host copies, collective: the temporary directory), write
// (this rank's file; no communication, so it may run on a background thread), publish
// (collective: checksums to rank 0, which writes the manifest, renames and moves `latest`).
class PendingSave {
 public:
  explicit PendingSave(Trainer& t) : cfg_(t.config()), world_(t.grid().world()), progress_(t.progress()) {
    const int rank = world_.rank();
    root_ = cfg_.checkpoint.dir;
    final_dir_ = root_ / step_name(progress_.step);
    tmp_ = root_ / ("." + step_name(progress_.step) + ".tmp");
    layout_ = {{"tensor_parallel", t.grid().tp()}, {"pipeline_parallel", t.grid().pp()}, {"data_parallel", t.grid().dp()}};
    optimizer_steps_ = t.optimizer().steps_taken();
    if (rank == 0) {
      fs::create_directories(root_);
      for (const auto& e : fs::directory_iterator(root_))  // leftovers of interrupted saves
        if (e.path().filename().string().rfind(".step_", 0) == 0) fs::remove_all(e.path());
      fs::create_directories(tmp_);
    }
    // This rank's ZeRO-1 pieces of master, m and v, each tagged with where it sits in the model.
    const ParamStore& params = t.model().params();
    const AdamW& opt = t.optimizer();
    const Zero1& z = opt.shard();
    const Tensor state[3] = {to_host_f32(z.master_shard()), to_host_f32(opt.exp_avg()), to_host_f32(opt.exp_avg_sq())};
    pieces_ = json::array();
    for (const ShardPiece& p : shard_pieces(params, z)) {
      const ParamSpec& s = *p.spec;
      for (int k = 0; k < 3; ++k)
        tensors_[std::string(kKinds[k]) + "/" + s.name + "/" + std::to_string(p.a)] = state[k].view(p.shard_at, {p.b - p.a});
      pieces_.push_back({{"param", s.name}, {"local_shape", s.shape}, {"global_shape", s.global_shape.empty() ? s.shape : s.global_shape},
                         {"split_dim", s.split_dim}, {"split_offset", s.split_offset}, {"begin", p.a}, {"end", p.b}});
    }
    world_.barrier();  // the temporary directory exists
  }

  void write() {
    const fs::path file = tmp_ / rank_file(world_.rank());
    write_safetensors(file.string(), tensors_, {{"pieces", pieces_.dump()}});
    fsync_path(file);
    checksum_ = file_checksum(file.string()), bytes_ = fs::file_size(file);
    tensors_.clear();  // the snapshot is on disk
  }

  void publish() {
    std::vector<int32_t> mine(4), all(4 * world_.size());
    std::memcpy(mine.data(), &checksum_, 8), std::memcpy(mine.data() + 2, &bytes_, 8);
    world_.all_gather(mine.data(), all.data(), 4, DType::I32);
    if (world_.rank() == 0) publish_on_rank0(all);
    world_.barrier();
  }

 private:
  static std::string rank_file(int r) {
    char b[32];
    std::snprintf(b, sizeof(b), "rank_%05d.safetensors", r);
    return b;
  }

  void publish_on_rank0(const std::vector<int32_t>& sums) {
    const json state = {{"format", "llamatron checkpoint"}, {"version", 1}, {"step", progress_.step},
                        {"tokens_seen", progress_.tokens_seen}, {"data_position", progress_.data_position},
                        {"optimizer_steps", optimizer_steps_}, {"layout", layout_}, {"precision", cfg_.train.precision},
                        {"model", model_json(cfg_.model)}};
    write_synced(tmp_ / "trainer.json", state.dump(2));
    write_synced(tmp_ / "config.yaml", config_to_yaml(cfg_));
    json files = json::array();
    const auto entry = [](const std::string& name, uint64_t n, uint64_t h) {
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
      return json{{"name", name}, {"bytes", n}, {"fnv1a", hex}};
    };
    for (int r = 0; r < world_.size(); ++r) {
      uint64_t h, n;
      std::memcpy(&h, sums.data() + 4 * r, 8), std::memcpy(&n, sums.data() + 4 * r + 2, 8);
      files.push_back(entry(rank_file(r), n, h));
    }
    for (const char* name : {"trainer.json", "config.yaml"})
      files.push_back(entry(name, fs::file_size(tmp_ / name), file_checksum((tmp_ / name).string())));
    write_synced(tmp_ / "manifest.json", json{{"step", progress_.step}, {"files", files}}.dump(2));
    fsync_path(tmp_);
    // Publish: the complete directory appears under its name, then `latest` moves to it.
    if (fs::exists(final_dir_)) fs::remove_all(final_dir_);
    fs::rename(tmp_, final_dir_);
    fsync_path(root_);
    write_synced(root_ / "latest.tmp", final_dir_.filename().string() + "\n");
    fs::rename(root_ / "latest.tmp", root_ / "latest");
    fsync_path(root_);
    if (cfg_.checkpoint.keep_last > 0) {  // the oldest complete checkpoints beyond keep_last
      std::vector<fs::path> steps;
      for (const auto& e : fs::directory_iterator(root_))
        if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) steps.push_back(e.path());
      std::sort(steps.begin(), steps.end());
      for (size_t i = 0; i + cfg_.checkpoint.keep_last < steps.size(); ++i)
        if (steps[i] != final_dir_) fs::remove_all(steps[i]);
    }
    spdlog::info("checkpoint: saved {}", final_dir_.string());
  }

  RunConfig cfg_;
  Communicator& world_;
  Trainer::Progress progress_;
  fs::path root_, final_dir_, tmp_;
  json layout_, pieces_;
  int64_t optimizer_steps_ = 0;
  std::map<std::string, Tensor> tensors_;
  uint64_t checksum_ = 0, bytes_ = 0;
};

void save_checkpoint(Trainer& t) {
  PendingSave save(t);
  save.write();
  save.publish();
}

AsyncCheckpointer::AsyncCheckpointer() = default;
AsyncCheckpointer::~AsyncCheckpointer() {
  if (writer_.joinable()) writer_.join();
}

void AsyncCheckpointer::start(Trainer& t) {
  finish();  // one save in flight at a time
  pending_ = std::make_unique<PendingSave>(t);  // the snapshot: training may change the state now
  writer_ = std::thread([this] {
    try {
      pending_->write();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  });
}

void AsyncCheckpointer::finish() {
  if (!pending_) return;
  writer_.join();
  if (!error_.empty()) throw Error("background checkpoint write failed: " + error_);
  pending_->publish();
  pending_.reset();
}

std::string find_checkpoint(const CheckpointConfig& c) {
  if (c.resume == "never") return "";
  const fs::path root = c.resume == "auto" ? fs::path(c.dir) : fs::path(c.resume);
  if (c.resume == "auto" && (c.dir.empty() || !fs::exists(root / "latest"))) return "";
  if (fs::exists(root / "latest")) {
    std::string name = slurp(root / "latest");
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    return (root / name).string();
  }
  return root.string();
}

void set_params(ParamStore& params, const GlobalWeights& w) {
  for (const ParamSpec& s : params.specs()) {
    const std::vector<float> global = w.get(s.name);
    const Shape& g = s.global_shape.empty() ? s.shape : s.global_shape;
    if (static_cast<int64_t>(global.size()) != shape_numel(g))
      throw Error(s.name + " has " + std::to_string(global.size()) + " values in the source but the model expects " + shape_str(g));
    Tensor local = Tensor::empty(s.shape, DType::F32), typed = Tensor::empty(s.shape, params.dtype());
    slice_global(s, global.data(), local.data<float>());
    typed.copy_from(local);  // rounded on the host when the parameters are bf16
    params.param(s.name).copy_from(typed);
    if (params.has_master() && !params.master_is_params()) params.master(s.name).copy_from(local);
  }
}

void load_checkpoint(Trainer& t, const std::string& dir) {
  CheckpointWeights w(dir);
  const json state = read_json(fs::path(dir) / "trainer.json", "trainer state");
  const json want = model_json(t.config().model), have = state.at("model");
  for (const auto& [k, v] : want.items())
    if (!have.contains(k) || have[k] != v)
      throw Error("checkpoint " + dir + " was saved for " + k + "=" + (have.contains(k) ? have[k].get<std::string>() : "?") +
                  " but the config has " + v.get<std::string>() + ": use the checkpoint's model config, or checkpoint.resume=never");
  ParamStore& params = t.model().params();
  AdamW& opt = t.optimizer_mut();
  const Zero1& z = opt.shard();
  set_params(params, w);
  const Tensor* state_tensors[3] = {&z.master_shard(), &opt.exp_avg(), &opt.exp_avg_sq()};
  for (const ShardPiece& p : shard_pieces(params, z))
    for (int k = 0; k < 3; ++k) {
      const std::vector<float> global = w.assemble(kKinds[k], p.spec->name);
      std::vector<float> local(p.spec->numel());
      slice_global(*p.spec, global.data(), local.data());
      Tensor piece = Tensor::wrap(local.data() + p.a, {p.b - p.a}, DType::F32);
      state_tensors[k]->view(p.shard_at, {p.b - p.a}).copy_from(piece);
    }
  opt.set_steps_taken(state.at("optimizer_steps").get<int64_t>());
  t.restore({state.at("step").get<int64_t>(), state.at("tokens_seen").get<int64_t>(), state.at("data_position").get<int64_t>()});
}

std::unique_ptr<GlobalWeights> checkpoint_weights(const std::string& dir) { return std::make_unique<CheckpointWeights>(dir); }

}  // namespace llamatron
