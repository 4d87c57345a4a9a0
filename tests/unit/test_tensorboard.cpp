// The TensorBoard writer's pieces against published values: CRC-32C's check value and the iSCSI
// test vectors of RFC 3720 (B.4), and TFRecord's framing. That TensorBoard itself reads the files
// is tests/e2e/tensorboard.sh (the real package's EventAccumulator).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "llamatron/tensorboard.h"

namespace llamatron {
namespace {

TEST(TensorBoard, Crc32cMatchesPublishedVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value for CRC-32C
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);  // ... of 0xff
  std::string up(32, '\0');
  for (int i = 0; i < 32; ++i) up[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c(up), 0x46DD794Eu);  // ... incrementing 0x00..0x1f
}

TEST(TensorBoard, RecordsAreFramedAsTfRecordReadsThem) {
  const std::string data = "hello";
  const std::string r = tfrecord(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  uint64_t length = 0;
  uint32_t length_crc = 0, data_crc = 0;
  std::memcpy(&length, r.data(), 8);
  std::memcpy(&length_crc, r.data() + 8, 4);
  std::memcpy(&data_crc, r.data() + 12 + data.size(), 4);
  EXPECT_EQ(length, data.size());
  EXPECT_EQ(r.substr(12, data.size()), data);
  const auto mask = [](uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; };
  EXPECT_EQ(length_crc, mask(crc32c(r.substr(0, 8))));
  EXPECT_EQ(data_crc, mask(crc32c(data)));
  EXPECT_EQ(masked_crc32c(data), mask(crc32c(data)));
}

}  // namespace
}  // namespace llamatron
