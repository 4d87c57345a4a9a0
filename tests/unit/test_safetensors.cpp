// safetensors: what we write is what the format says (checked by reading it back field by field
// with the reader, and by the header's byte layout), and bad files are rejected.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "llamatron/errors.h"
#include "llamatron/safetensors.h"

namespace llamatron {
namespace {

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  const std::string path = (std::filesystem::temp_directory_path() / "lt_roundtrip.safetensors").string();
  Tensor a = Tensor::empty({2, 3}, DType::F32), b = Tensor::empty({5}, DType::BF16), c = Tensor::empty({4}, DType::I32);
  for (int i = 0; i < 6; ++i) a.data<float>()[i] = 0.5f * i - 1;
  for (int i = 0; i < 5; ++i) b.data<bf16>()[i] = bf16(1.0f + i);
  for (int i = 0; i < 4; ++i) c.data<int32_t>()[i] = 7 * i - 3;
  write_safetensors(path, {{"a", a}, {"b", b}, {"c", c}}, {{"format", "pt"}});

  std::ifstream f(path, std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u) << "header padded to 8 bytes";
  EXPECT_EQ(std::filesystem::file_size(path), 8 + n + 6 * 4 + 5 * 2 + 4 * 4);

  const SafetensorsFile st = read_safetensors(path);
  EXPECT_EQ(st.metadata.at("format"), "pt");
  EXPECT_EQ(st.at("a").dtype, "F32");
  EXPECT_EQ(st.at("b").dtype, "BF16");
  EXPECT_EQ(st.at("c").dtype, "I32");
  EXPECT_EQ(st.at("a").shape, (Shape{2, 3}));
  EXPECT_EQ(st.at("a").to_f64(), (std::vector<double>{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(st.at("b").to_f64(), (std::vector<double>{1, 2, 3, 4, 5}));
  EXPECT_EQ(st.at("c").to_f64(), (std::vector<double>{-3, 4, 11, 18}));
  EXPECT_THROW(st.at("missing"), Error);
}

TEST(Safetensors, RejectsCorruptFiles) {
  const std::string path = (std::filesystem::temp_directory_path() / "lt_bad.safetensors").string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write("\xff\xff\xff\xff\xff\xff\xff\x00garbage", 15);
  EXPECT_THROW(read_safetensors(path), Error);
  EXPECT_THROW(read_safetensors(path + ".nope"), Error);
}

}  // namespace
}  // namespace llamatron
