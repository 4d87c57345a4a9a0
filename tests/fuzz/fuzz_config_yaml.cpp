// A run config (YAML), parsed and validated; what it accepts, it writes back readably.
#include "fuzz_util.h"
#include "llamatron/config.h"

using namespace llamatron;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_clean([&] {
    const RunConfig c = parse_config(std::string(fuzz::bytes(data, size)));
    fuzz::must([&] { (void)parse_config(config_to_yaml(c)); });
  });
  return 0;
}
