#include "llamatron/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <stdio.h>  // renameat2

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include <spdlog/spdlog.h>

#include "llamatron/checked.h"
#include "llamatron/checkpoint_format.h"
#include "llamatron/errors.h"
#include "llamatron/file_io.h"
#include "llamatron/model.h"
#include "llamatron/safetensors.h"
#include "llamatron/trainer.h"

namespace llamatron {
namespace fs = std::filesystem;

namespace {

std::string step_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof(b), "step_%08lld", static_cast<long long>(step));
  return b;
}

std::string rank_file(int r) {
  char b[32];
  std::snprintf(b, sizeof(b), "rank_%05d.safetensors", r);
  return b;
}

// What a failed save leaves: nothing published, `latest` on the previous checkpoint.
std::string not_saved(const fs::path& dir) {
  return "checkpoint " + dir.filename().string() + " was not saved (nothing was published: " + (dir.parent_path() / "latest").string() +
         " is unchanged)";
}

std::map<std::string, std::string> model_values(const ModelConfig& m) {
  RunConfig c;
  c.model = m;
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : config_values(c))
    if (k.rfind("model.", 0) == 0) out[k] = v;
  return out;
}

Tensor to_host_f32(const Tensor& t) {
  Tensor h = Tensor::empty(t.shape(), DType::F32);
  h.copy_from(t);
  return h;
}

// The manifest's checks, before anything is read for use: every file present, its size and checksum.
Manifest verify_manifest(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("checkpoint " + dir.string() + " does not exist or is not a directory");
  if (!fs::exists(dir / "manifest.json", ec))
    throw Error("checkpoint " + dir.string() + " has no manifest.json: it is incomplete (an interrupted save?); load an earlier one");
  const fs::path mpath = dir / "manifest.json";
  const Manifest manifest = parse_manifest(read_small_file(mpath.string(), "checkpoint manifest"), mpath.string());
  for (const ManifestFile& f : manifest.files) {
    const fs::path p = dir / f.name;
    if (!fs::exists(p, ec)) throw Error("checkpoint " + dir.string() + ": " + f.name + " is missing");
    if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) != f.bytes ||
        file_fnv1a64(p.string(), f.legacy_checksum ? kFnv1aLegacyBasis : kFnv1aBasis) != f.checksum)
      throw Error("checkpoint " + dir.string() + ": " + f.name +
                  " is corrupt or truncated (size or checksum differs from the manifest); load an earlier checkpoint");
  }
  return manifest;
}

// A verified checkpoint directory: its trainer state, and the pieces of every rank file checked
// against the model the state describes.
class CheckpointWeights final : public GlobalWeights {
 public:
  // expect: the model the loading run has (checked key by key before any rank file is read).
  explicit CheckpointWeights(const std::string& dir, const ModelConfig* expect = nullptr) : dir_(dir) {
    const Manifest manifest = verify_manifest(dir);
    const fs::path tpath = fs::path(dir) / "trainer.json";
    state_ = parse_trainer_state(read_small_file(tpath.string(), "trainer state"), tpath.string());
    if (manifest.step != state_.step)
      throw Error("checkpoint " + dir + ": manifest.json is of step " + std::to_string(manifest.step) + " but trainer.json of step " +
                  std::to_string(state_.step) + ": the files come from different saves");
    if (manifest.rank_files() != state_.tp * state_.pp * state_.dp)
      throw Error("checkpoint " + dir + ": trainer.json's layout (tp " + std::to_string(state_.tp) + " x pp " + std::to_string(state_.pp) +
                  " x dp " + std::to_string(state_.dp) + ") has " + std::to_string(state_.tp * state_.pp * state_.dp) +
                  " ranks, but the manifest lists " + std::to_string(manifest.rank_files()) + " rank files");
    if (expect)
      for (const auto& [k, v] : model_values(*expect))
        if (state_.model.at(k) != v)
          throw Error("checkpoint " + dir + " was saved for " + k + "=" + state_.model.at(k) + " but the config has " + v +
                      ": use the checkpoint's model config, or checkpoint.resume=never");
    model_ = state_.model_config();
    std::vector<SafetensorsFile> files;
    int64_t stored = 0;  // master values in the files: every parameter needs one, so the model is at most this big
    for (int r = 0; r < manifest.rank_files(); ++r) {
      files.push_back(read_safetensors((fs::path(dir) / rank_file(r)).string()));
      for (const auto& [name, e] : files.back().tensors)
        if (name.rfind("master/", 0) == 0) stored += e.numel();
    }
    if (*model_.checked_params() > stored)
      throw Error("checkpoint " + dir + ": trainer.json describes a model of " + std::to_string(*model_.checked_params()) +
                  " parameters, but the rank files hold " + std::to_string(stored) + " master values: the files are of another model");
    pieces_ = std::make_unique<CheckpointPieces>(std::move(files), param_targets(model_, state_.tp), dir);
  }
  std::vector<float> get(const std::string& name, const Shape& shape) const override {
    const Shape want = param_targets(model_, 1).at(name).global_shape;
    if (want != shape)
      throw Error("checkpoint " + dir_ + " holds " + name + " as " + shape_str(want) + " but it is needed as " + shape_str(shape));
    return assemble("master", name);
  }
  const ModelConfig& model() const override { return model_; }
  const TrainerState& state() const { return state_; }
  std::vector<float> assemble(const std::string& kind, const std::string& name) const { return pieces_->assemble(kind, name); }

 private:
  std::string dir_;
  TrainerState state_;
  ModelConfig model_;
  std::unique_ptr<CheckpointPieces> pieces_;
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

// The complete checkpoints (step_N directories with a manifest) in root, oldest first (by step:
// past 10^8 steps the names are longer, so not in text order).
std::vector<std::string> complete_checkpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code missing;
    if (name.size() > 5 && name.rfind("step_", 0) == 0 && std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; }) && name.size() < 24 &&
        fs::exists(it->path() / "manifest.json", missing))
      found.push_back({std::stoll(name.substr(5)), name});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, name] : found) out.push_back(std::move(name));
  return out;
}

}  // namespace

// A save in three phases: snapshot (host copies, collective: the temporary directory), write
// (this rank's file; no communication, so it may run on a background thread), publish
// (collective: checksums to rank 0, which writes the manifest, renames and moves `latest`).
// Each collective phase fails on every rank together (fail_together); nothing is published unless
// every file is complete, so `latest` always names a whole checkpoint.
class PendingSave {
 public:
  explicit PendingSave(Trainer& t) : cfg_(t.config()), world_(t.grid().world()), progress_(t.progress()) {
    root_ = cfg_.checkpoint.dir;
    final_dir_ = root_ / step_name(progress_.step);
    tmp_ = root_ / ("." + step_name(progress_.step) + ".tmp");
    // dp: the ranks a model replica's ZeRO-1 state is sharded over (dp x cp: every rank writes a file).
    layout_ = {t.grid().tp(), t.grid().pp(), t.grid().dp() * t.grid().cp()};
    optimizer_steps_ = t.optimizer().steps_taken();
    fail_together(world_, not_saved(final_dir_), [&] {
      if (world_.rank() != 0) return;
      fs::create_directories(root_);
      for (const auto& e : fs::directory_iterator(root_))  // leftovers of interrupted saves
        if (e.path().filename().string().rfind(".step_", 0) == 0) fs::remove_all(e.path());
      fs::create_directories(tmp_);
    });
    // This rank's ZeRO-1 pieces of master, m and v, each tagged with where it sits in the model.
    const ParamStore& params = t.model().params();
    const AdamW& opt = t.optimizer();
    const Zero1& z = opt.shard();
    const Tensor state[3] = {to_host_f32(z.master_shard()), to_host_f32(opt.exp_avg()), to_host_f32(opt.exp_avg_sq())};
    for (const ShardPiece& p : shard_pieces(params, z)) {
      const ParamSpec& s = *p.spec;
      for (int k = 0; k < 3; ++k)
        tensors_[std::string(CheckpointPieces::kKinds[k]) + "/" + s.name + "/" + std::to_string(p.a)] = state[k].view(p.shard_at, {p.b - p.a});
      pieces_.push_back({s.name, s.shape, s.global_shape.empty() ? s.shape : s.global_shape, s.split_dim, s.split_offset, p.a, p.b});
    }
  }

  // This rank's file (not collective: the async writer's thread runs it).
  void write() {
    const fs::path file = tmp_ / rank_file(world_.rank());
    write_safetensors(file.string(), tensors_, {{"pieces", pieces_json(pieces_)}});
    checksum_ = file_fnv1a64(file.string()), bytes_ = fs::file_size(file);
    tensors_.clear();  // the snapshot is on disk
  }

  void publish() {
    std::vector<int32_t> mine(4), all(4 * world_.size());
    std::memcpy(mine.data(), &checksum_, 8), std::memcpy(mine.data() + 2, &bytes_, 8);
    world_.all_gather(mine.data(), all.data(), 4, DType::I32);
    fail_together(world_, not_saved(final_dir_), [&] {
      if (world_.rank() == 0) publish_on_rank0(all);
    });
  }

  const fs::path& dir() const { return final_dir_; }
  Communicator& world() { return world_; }

 private:
  void publish_on_rank0(const std::vector<int32_t>& sums) {
    TrainerState state;
    state.step = progress_.step, state.tokens_seen = progress_.tokens_seen, state.data_position = progress_.data_position;
    state.optimizer_steps = optimizer_steps_, state.tp = layout_[0], state.pp = layout_[1], state.dp = layout_[2];
    state.precision = cfg_.train.precision, state.model = model_values(cfg_.model);
    write_file_durably((tmp_ / "trainer.json").string(), trainer_state_json(state));
    write_file_durably((tmp_ / "config.yaml").string(), config_to_yaml(cfg_));
    Manifest manifest;
    manifest.step = progress_.step;
    for (int r = 0; r < world_.size(); ++r) {
      ManifestFile f{rank_file(r)};
      std::memcpy(&f.checksum, sums.data() + 4 * r, 8), std::memcpy(&f.bytes, sums.data() + 4 * r + 2, 8);
      manifest.files.push_back(f);
    }
    for (const char* name : {"trainer.json", "config.yaml"})
      manifest.files.push_back({name, fs::file_size(tmp_ / name), file_fnv1a64((tmp_ / name).string())});
    write_file_durably((tmp_ / "manifest.json").string(), manifest_json(manifest));
    sync_directory(tmp_.string());
    // Publish: the complete directory appears under its name, then `latest` moves to it. A step
    // saved again (a run restarted with resume=never) swaps the two directories in one step, so
    // `latest` never names a missing one; the old one, now at tmp_, goes after.
    if (fs::exists(final_dir_)) {
      if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, final_dir_.c_str(), RENAME_EXCHANGE) != 0)
        throw Error("cannot replace " + final_dir_.string() + ": " + std::strerror(errno));
      fs::remove_all(tmp_);
    } else {
      fs::rename(tmp_, final_dir_);
    }
    sync_directory(root_.string());
    write_file_durably((root_ / "latest.tmp").string(), final_dir_.filename().string() + "\n");
    fs::rename(root_ / "latest.tmp", root_ / "latest");
    sync_directory(root_.string());
    if (cfg_.checkpoint.keep_last > 0) {  // the oldest complete checkpoints beyond keep_last
      const std::vector<std::string> steps = complete_checkpoints(root_);
      for (size_t i = 0; i + cfg_.checkpoint.keep_last < steps.size(); ++i)
        if (root_ / steps[i] != final_dir_) fs::remove_all(root_ / steps[i]);
    }
    spdlog::info("checkpoint: saved {}", final_dir_.string());
  }

  RunConfig cfg_;
  Communicator& world_;
  Trainer::Progress progress_;
  fs::path root_, final_dir_, tmp_;
  std::array<int64_t, 3> layout_{};
  int64_t optimizer_steps_ = 0;
  std::vector<CheckpointPiece> pieces_;
  std::map<std::string, Tensor> tensors_;
  uint64_t checksum_ = 0, bytes_ = 0;
};

void save_checkpoint(Trainer& t) {
  PendingSave save(t);
  fail_together(save.world(), not_saved(save.dir()), [&] { save.write(); });
  save.publish();
}

AsyncCheckpointer::AsyncCheckpointer() = default;
AsyncCheckpointer::~AsyncCheckpointer() {
  if (writer_.joinable()) writer_.join();
}

void AsyncCheckpointer::start(Trainer& t) {
  finish();  // one save in flight at a time
  pending_ = std::make_unique<PendingSave>(t);  // the snapshot: training may change the state now
  error_.clear();
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
  std::unique_ptr<PendingSave> save = std::move(pending_);
  fail_together(save->world(), not_saved(save->dir()), [&] {
    if (!error_.empty()) throw Error("the background write failed: " + error_);
  });
  save->publish();
}

std::string find_checkpoint(const CheckpointConfig& c) {
  if (c.resume == "never") return "";
  std::error_code ec;
  const fs::path root = c.resume == "auto" ? fs::path(c.dir) : fs::path(c.resume);
  if (c.resume == "auto" && (c.dir.empty() || !fs::exists(root / "latest", ec))) return "";
  if (!fs::exists(root / "latest", ec)) return root.string();
  std::string name = read_small_file((root / "latest").string(), "checkpoint pointer", 4096);
  name.erase(name.find_last_not_of(" \n\r\t") + 1);
  const bool plain = !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
                     std::all_of(name.begin(), name.end(), [](unsigned char ch) { return ch >= 0x20 && ch < 0x7f; });
  if (plain && fs::is_directory(root / name, ec)) return (root / name).string();
  const std::vector<std::string> have = complete_checkpoints(root);
  std::string list;
  for (const std::string& s : have) list += (list.empty() ? "" : ", ") + s;
  throw Error((root / "latest").string() + (name.empty() ? " is empty" : " names " + json_brief(nlohmann::json(name)) + ", which is not a directory in " + root.string()) +
              " (it should name the newest checkpoint): " +
              (have.empty() ? "no complete checkpoint is here; set checkpoint.resume=never to start fresh"
                            : "the complete ones are " + list + "; set checkpoint.resume=" + (root / have.back()).string()));
}

CheckpointDirLock::CheckpointDirLock(const std::string& dir, Communicator& world) {
  std::string holder;
  fail_together(world, "", [&] {
    if (world.rank() != 0) return;
    std::error_code ec;
    fs::create_directories(dir, ec);
    const std::string path = (fs::path(dir) / ".lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("cannot open " + path + ": " + std::strerror(errno) + ": check that checkpoint.dir (" + dir + ") is a writable directory");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char who[256] = {};
      const ssize_t n = ::pread(fd_, who, sizeof(who) - 1, 0);
      std::string text(who, n > 0 ? static_cast<size_t>(n) : 0);
      text.erase(text.find_last_not_of(" \n") + 1);
      ::close(fd_), fd_ = -1;
      throw Error("checkpoint.dir " + dir + " is in use by another run (" + (text.empty() ? "its process is unknown" : text) +
                  "): two runs would overwrite each other's checkpoints; give this run its own checkpoint.dir, or stop the other one");
    }
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const std::string me = "process " + std::to_string(::getpid()) + " on host " + host;
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
      throw Error("cannot write " + path + ": " + std::strerror(errno));
  });
}

CheckpointDirLock::~CheckpointDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

void set_params(ParamStore& params, const GlobalWeights& w) {
  for (const ParamSpec& s : params.specs()) {
    const Shape& g = s.global_shape.empty() ? s.shape : s.global_shape;
    const std::vector<float> global = w.get(s.name, g);
    LT_CHECK(static_cast<int64_t>(global.size()) == shape_numel(g), "a weight source returned " + s.name + " of another size");
    Tensor local = Tensor::empty(s.shape, DType::F32), typed = Tensor::empty(s.shape, params.dtype());
    slice_global(s, global.data(), local.data<float>());
    typed.copy_from(local);  // rounded on the host when the parameters are bf16
    params.param(s.name).copy_from(typed);
    if (params.has_master() && !params.master_is_params()) params.master(s.name).copy_from(local);
  }
}

void load_checkpoint(Trainer& t, const std::string& dir) {
  const CheckpointWeights w(dir, &t.config().model);
  ParamStore& params = t.model().params();
  AdamW& opt = t.optimizer_mut();
  const Zero1& z = opt.shard();
  set_params(params, w);
  const Tensor* state_tensors[3] = {&z.master_shard(), &opt.exp_avg(), &opt.exp_avg_sq()};
  for (const ShardPiece& p : shard_pieces(params, z))
    for (int k = 0; k < 3; ++k) {
      const std::vector<float> global = w.assemble(CheckpointPieces::kKinds[k], p.spec->name);
      std::vector<float> local(p.spec->numel());
      slice_global(*p.spec, global.data(), local.data());
      Tensor piece = Tensor::wrap(local.data() + p.a, {p.b - p.a}, DType::F32);
      state_tensors[k]->view(p.shard_at, {p.b - p.a}).copy_from(piece);
    }
  opt.set_steps_taken(w.state().optimizer_steps);
  t.restore({w.state().step, w.state().tokens_seen, w.state().data_position});
}

std::unique_ptr<GlobalWeights> checkpoint_weights(const std::string& dir) { return std::make_unique<CheckpointWeights>(dir); }

}  // namespace llamatron
