#include "llamatron/tensorboard.h"

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <unistd.h>

#include "llamatron/errors.h"
#include "llamatron/file_io.h"

namespace llamatron {
namespace {

// The reflected CRC-32C table (polynomial 0x1EDC6F41, reversed 0x82F63B78).
constexpr std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32c = crc32c_table();

// Protocol-buffer wire format: a key is (field << 3) | wire type; 0 varint, 1 64-bit, 2 bytes, 5 32-bit.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) out.push_back(static_cast<char>((v & 0x7f) | 0x80)), v >>= 7;
  out.push_back(static_cast<char>(v));
}
template <typename T>
void put_fixed(std::string& out, T v) {  // little-endian, as x86 and every protobuf reader have it
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event { wall_time = 1 (double); step = 2 (int64); file_version = 3 (string); summary = 5 }.
std::string event_head(int64_t step) {
  std::string e;
  put_varint(e, 1 << 3 | 1);
  put_fixed(e, std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  put_varint(e, 2 << 3 | 0);
  put_varint(e, static_cast<uint64_t>(step));
  return e;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  uint32_t c = ~0u;
  for (const char ch : bytes) c = kCrc32c[(c ^ static_cast<uint8_t>(ch)) & 0xff] ^ (c >> 8);
  return ~c;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string length;
  put_fixed(length, static_cast<uint64_t>(data.size()));
  std::string out = length;
  put_fixed(out, masked_crc32c(length));
  out.append(data);
  put_fixed(out, masked_crc32c(data));
  return out;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("logging.tensorboard_dir " + dir + ": cannot create it (" + ec.message() + ")");
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) +
                                          "." + host))
              .string();
  // Two runs started in the same second on one host would share the name: appending keeps both.
  file_ = std::make_unique<CheckedFile>(path_, CheckedFile::Append, "logging.tensorboard_dir");
  std::string e = event_head(0);
  put_bytes(e, 3, "brain.Event:2");
  file_->write(tfrecord(e));
}

TensorBoardWriter::~TensorBoardWriter() = default;

void TensorBoardWriter::write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;  // Summary { repeated Value value = 1 }, Value { tag = 1 (string); simple_value = 2 (float) }
  for (const auto& [tag, v] : scalars) {
    std::string value;
    put_bytes(value, 1, tag);
    put_varint(value, 2 << 3 | 5);
    put_fixed(value, static_cast<float>(v));
    put_bytes(summary, 1, value);
  }
  std::string e = event_head(step);
  put_bytes(e, 5, summary);
  file_->write(tfrecord(e));
}

void TensorBoardWriter::close() { file_->close(true); }

}  // namespace llamatron
