// An llm.c token shard (header and size).
#include "fuzz_util.h"
#include "llamatron/data.h"

using namespace llamatron;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_clean([&] { (void)parse_llmc_header(fuzz::bytes(data, size), size, "shard.bin"); });
  return 0;
}
