// Checkpoints that survive crashes and reshard (docs/formats.md), and Hugging Face interop.
//
// A checkpoint is one directory per step, DIR/step_NNNNNNNN/: one safetensors file per rank with
// that rank's ZeRO-1 pieces of the fp32 master weights and Adam's m and v, each piece tagged with its
// parameter's global name, global shape, tensor-parallel slice and flat range, so any layout can
// assemble the slices it needs; trainer.json (step, tokens, data position, layout, model config);
// config.yaml (the resolved config); manifest.json (every file's size and FNV-1a checksum). It is
// written to a temporary directory, fsynced and renamed, and DIR/latest is replaced (also by
// rename) only after that: a crash at any moment leaves the previous checkpoint intact.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "llamatron/config.h"
#include "llamatron/params.h"
#include "llamatron/tensor.h"

namespace llamatron {

class Trainer;
class Communicator;

// Collective over the trainer's world: saves its state as DIR/step_<step> (DIR = checkpoint.dir),
// points DIR/latest at it and deletes checkpoints beyond checkpoint.keep_last.
void save_checkpoint(Trainer& trainer);

// checkpoint.async: the snapshot to host memory happens in start() (the trainer may go on at
// once); this rank's file is written on a background thread; finish() waits for it and publishes
// (collective). start() finishes the previous save first. Nothing is published until finish().
class PendingSave;
class AsyncCheckpointer {
 public:
  AsyncCheckpointer();
  ~AsyncCheckpointer();
  void start(Trainer& trainer);
  void finish();

 private:
  std::unique_ptr<PendingSave> pending_;
  std::thread writer_;
  std::string error_;
};

// checkpoint.resume resolved: the checkpoint directory to load, or "" to start fresh. DIR/latest
// must name a directory in DIR (an empty or garbage `latest` is an error listing the checkpoints).
std::string find_checkpoint(const CheckpointConfig& cfg);

// One run per checkpoint.dir: an exclusive lock on DIR/.lock (flock, so a crashed run holds
// nothing), taken by the world's rank 0 for the run's lifetime and agreed on by every rank. A
// second run on the same directory is an error naming the process that holds it.
class CheckpointDirLock {
 public:
  CheckpointDirLock(const std::string& dir, Communicator& world);
  ~CheckpointDirLock();
  CheckpointDirLock(const CheckpointDirLock&) = delete;
  CheckpointDirLock& operator=(const CheckpointDirLock&) = delete;

 private:
  int fd_ = -1;
};

// Collective: loads a checkpoint saved under any layout into this trainer's layout. Checks every
// file against the manifest and the model config against the checkpoint's first; an error leaves
// nothing half-loaded that training could continue from.
void load_checkpoint(Trainer& trainer, const std::string& dir);

// Whole (global, unpadded) fp32 tensors by Hugging Face name, from a checkpoint of any layout or
// from a Hugging Face model directory. `shape` is what the caller expects: a tensor of another
// shape (even with as many elements: a transposed matrix) is an error naming the file.
class GlobalWeights {
 public:
  virtual ~GlobalWeights() = default;
  virtual std::vector<float> get(const std::string& name, const Shape& shape) const = 0;
  virtual const ModelConfig& model() const = 0;
};
std::unique_ptr<GlobalWeights> checkpoint_weights(const std::string& dir);
std::unique_ptr<GlobalWeights> hf_weights(const std::string& dir);

// Sets every parameter this store holds (its slices) from global weights: master and parameters.
void set_params(ParamStore& params, const GlobalWeights& weights);

// `llamatron export-hf`: config.json + model.safetensors (bf16 or fp32), vocab padding removed.
void export_hf(const std::string& checkpoint_dir, const std::string& out_dir, DType dtype);
// A ModelConfig from a Hugging Face config.json (LLaMA keys; errors name a missing or odd key).
ModelConfig hf_model_config(const std::string& dir);

}  // namespace llamatron
