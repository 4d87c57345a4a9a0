// TensorBoard event files (logging.tensorboard_dir), written directly: TFRecord framing (length,
// masked CRC-32C of the length, data, masked CRC-32C of the data) around hand-encoded `Event`
// protobufs, one per step with a `Summary` of simple_value scalars. The format is five fields of
// two messages; protoc, the .proto files (which TensorFlow owns and Debian does not ship) and
// libprotobuf would be more code to build than the encoder (docs/config.md, "TensorBoard").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llamatron {

class CheckedFile;

// CRC-32C (Castagnoli) of `bytes`, and TFRecord's mask of it: ((c >> 15) | (c << 17)) + 0xa282ead8.
uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);
// One TFRecord record around `data`.
std::string tfrecord(std::string_view data);

class TensorBoardWriter {
 public:
  // Creates `dir` if needed and a new events.out.tfevents.<unix time>.<host> in it (a resumed run
  // adds a file: TensorBoard reads every file of a directory); its first record is the file version.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  // One Event at `step` with these scalars (stored as float32, as TensorBoard's simple_value is),
  // written through to the file: each step's record is complete when this returns.
  void write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars);
  void close();  // fsyncs and closes, checked
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<CheckedFile> file_;
};

}  // namespace llamatron
