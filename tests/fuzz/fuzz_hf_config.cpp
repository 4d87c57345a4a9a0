// A Hugging Face config.json and model.safetensors.index.json (both parsers see every input).
#include "fuzz_util.h"
#include "llamatron/hf_config.h"

using namespace llamatron;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_clean([&] {
    const ModelConfig m = parse_hf_config(fuzz::bytes(data, size), "config.json");
    fuzz::must([&] { (void)parse_hf_config(hf_config_json(m, DType::BF16), "config.json (written back)"); });
  });
  fuzz::expect_clean([&] { (void)parse_hf_index(fuzz::bytes(data, size), "model.safetensors.index.json"); });
  return 0;
}
