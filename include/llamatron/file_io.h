// Files the engine reads and writes, with every system call checked (docs/formats.md).
// Reading: only regular files (a FIFO or a device given as a data path is an error, not a hang).
// Writing: a published file is complete: bytes written, fsync'ed and closed without error, or an
// Error naming the file and the reason (a full disk shows at write, fsync or close).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace llamatron {

// Opens `path` for reading; it must be a regular file. `what` names it in errors ("data shard").
// Returns the descriptor (the caller closes it) and its size.
struct OpenedFile {
  int fd = -1;
  uint64_t bytes = 0;
};
OpenedFile open_regular_file(const std::string& path, const std::string& what);

// The whole of a regular file, at most max_bytes (more is an error naming the limit).
std::string read_small_file(const std::string& path, const std::string& what, uint64_t max_bytes = uint64_t{64} << 20);

// Writes `bytes` to `path` (created or truncated), then fsync and close, each checked.
void write_file_durably(const std::string& path, std::string_view bytes);

// fsync of a directory: the entries created or renamed in it reach the disk.
void sync_directory(const std::string& path);

// A file written in pieces (a safetensors file, a metrics log): each write is complete or an
// Error; close() fsyncs (when asked) and closes, checked. The destructor closes without checking
// (an error path).
class CheckedFile {
 public:
  enum Mode { Truncate, Append };
  CheckedFile(const std::string& path, Mode mode, const std::string& what);
  ~CheckedFile();
  CheckedFile(const CheckedFile&) = delete;
  CheckedFile& operator=(const CheckedFile&) = delete;
  void write(std::string_view bytes);
  void close(bool sync);
  bool is_open() const { return fd_ >= 0; }

 private:
  [[noreturn]] void fail(const std::string& doing, int err);
  std::string path_, what_;
  int fd_ = -1;
};

}  // namespace llamatron
