// A Megatron .idx file. The input is a little-endian u64 (the .bin's size) followed by the .idx,
// so the checks after the size comparison are reached too.
#include <cstring>

#include "fuzz_util.h"
#include "llamatron/data.h"

using namespace llamatron;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t bin_bytes;
  std::memcpy(&bin_bytes, data, 8);
  fuzz::expect_clean([&] { (void)parse_megatron_index(fuzz::bytes(data + 8, size - 8), bin_bytes, "data.idx", "data.bin"); });
  return 0;
}
