// The files of a checkpoint directory (docs/formats.md), read and written. Reading trusts nothing:
// the manifest's checksum protects against a damaged disk, not against an edit (anyone can
// recompute it), so every field of manifest.json, trainer.json and each rank file's piece metadata
// is checked against the model and the file before it is used to index anything.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "llamatron/config.h"
#include "llamatron/safetensors.h"
#include "llamatron/tensor.h"

namespace llamatron {

// 64-bit FNV-1a (the standard offset basis 0xcbf29ce484222325). Manifests before 2026-12 used the
// basis 0x14650fb0739d0383 under the key "fnv1a"; they are still read.
constexpr uint64_t kFnv1aBasis = 0xcbf29ce484222325ull, kFnv1aLegacyBasis = 0x14650fb0739d0383ull;
uint64_t fnv1a64(std::string_view bytes, uint64_t h = kFnv1aBasis);
uint64_t file_fnv1a64(const std::string& path, uint64_t basis = kFnv1aBasis);

// manifest.json: the step and every file's size and checksum.
struct ManifestFile {
  std::string name;        // a plain file name: rank_RRRRR.safetensors, trainer.json or config.yaml
  uint64_t bytes = 0, checksum = 0;
  bool legacy_checksum = false;  // "fnv1a" (the old basis) instead of "fnv1a64"
};
struct Manifest {
  int64_t step = 0;
  std::vector<ManifestFile> files;
  int rank_files() const;
};
Manifest parse_manifest(std::string_view text, const std::string& where);
std::string manifest_json(const Manifest& m);

// trainer.json: where training stands, the layout that saved it and the model it is of.
struct TrainerState {
  int64_t step = 0, tokens_seen = 0, data_position = 0, optimizer_steps = 0;
  int64_t tp = 1, pp = 1, dp = 1;
  std::string precision = "fp32";
  std::map<std::string, std::string> model;  // every "model.*" key, as config_values() writes it
  ModelConfig model_config() const;          // parsed and validated
};
TrainerState parse_trainer_state(std::string_view text, const std::string& where);
std::string trainer_state_json(const TrainerState& s);

// One ZeRO-1 piece of a parameter in a rank file: the flat range [begin, end) of the saving rank's
// local tensor (local_shape), which sits at split_offset along split_dim of the global tensor
// (split_dim -1: the local tensor is the whole one).
struct CheckpointPiece {
  std::string param;
  Shape local_shape, global_shape;
  int split_dim = -1;
  int64_t split_offset = 0, begin = 0, end = 0;
};
std::string pieces_json(const std::vector<CheckpointPiece>& pieces);

// What a checkpoint must hold for each parameter: its global shape, and how many rows past it a
// tensor-parallel slice may carry (the vocabulary padding of the saving layout; 0 for the rest).
struct ParamTarget {
  Shape global_shape;
  int64_t row_padding = 0;
};

// Every parameter of model m, as a checkpoint saved with tensor parallelism saved_tp holds it.
std::map<std::string, ParamTarget> param_targets(const ModelConfig& m, int64_t saved_tp);

// The pieces of every rank file of one checkpoint, each checked against the targets and against
// its tensors in the file (names master/P/A, exp_avg/P/A, exp_avg_sq/P/A; F32; end - begin values).
class CheckpointPieces {
 public:
  static constexpr const char* kKinds[3] = {"master", "exp_avg", "exp_avg_sq"};
  CheckpointPieces(std::vector<SafetensorsFile> files, std::map<std::string, ParamTarget> targets, std::string dir);
  // The whole fp32 tensor of one kind; every element must come from some piece.
  std::vector<float> assemble(const std::string& kind, const std::string& param) const;

 private:
  struct Located {
    CheckpointPiece piece;
    const SafetensorsFile* file;
  };
  std::vector<SafetensorsFile> files_;
  std::map<std::string, ParamTarget> targets_;
  std::map<std::string, std::vector<Located>> index_;
  std::string dir_;
};

}  // namespace llamatron
