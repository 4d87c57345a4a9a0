// A checkpoint's trainer.json and manifest.json (both parsers see every input).
#include "fuzz_util.h"
#include "llamatron/checkpoint_format.h"

using namespace llamatron;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_clean([&] {
    const TrainerState s = parse_trainer_state(fuzz::bytes(data, size), "trainer.json");
    fuzz::must([&] { (void)parse_trainer_state(trainer_state_json(s), "trainer.json (written back)"); });  // what it accepts, it writes readably
  });
  fuzz::expect_clean([&] {
    const Manifest m = parse_manifest(fuzz::bytes(data, size), "manifest.json");
    fuzz::must([&] { (void)parse_manifest(manifest_json(m), "manifest.json (written back)"); });
  });
  return 0;
}
