// A checkpoint rank file: the safetensors header, then its "pieces" metadata checked against a
// tiny model saved with tensor parallelism 2 (the seeds are such files), then every parameter's
// master, m and v assembled from the pieces (the writes that once went out of bounds).
#include "fuzz_util.h"
#include "llamatron/checkpoint_format.h"
#include "llamatron/safetensors.h"

using namespace llamatron;

namespace {
ModelConfig tiny() {
  ModelConfig m;  // tests/fuzz/make_seeds.sh trains this model
  m.vocab_size = 20, m.dim = 8, m.n_layers = 1, m.n_heads = 2, m.n_kv_heads = 1, m.ffn_dim = 16, m.max_seq_len = 8;
  return m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ModelConfig model = tiny();
  fuzz::expect_clean([&] {
    SafetensorsFile file = parse_safetensors(fuzz::bytes(data, size), "rank_00000.safetensors");
    for (const auto& entry : file.tensors) fuzz::expect_clean([&] { (void)entry.second.to_f64(); });
    const CheckpointPieces pieces({std::move(file)}, param_targets(model, 2), "fuzz");
    for (const auto& target : param_targets(model, 2))
      for (const char* kind : CheckpointPieces::kKinds) fuzz::expect_clean([&] { (void)pieces.assemble(kind, target.first); });
  });
  return 0;
}
