#include "llamatron/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "llamatron/errors.h"

namespace llamatron {
namespace {

std::string kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "a special file";
}

}  // namespace

OpenedFile open_regular_file(const std::string& path, const std::string& what) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + what + " " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot stat " + what + " " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(what + " " + path + " is " + kind_of(st.st_mode) + ", not a regular file: give the path of a file");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return {fd, static_cast<uint64_t>(st.st_size)};
}

std::string read_small_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  const OpenedFile f = open_regular_file(path, what);
  if (f.bytes > max_bytes) {
    ::close(f.fd);
    throw Error(what + " " + path + " is " + std::to_string(f.bytes) + " bytes, more than the " + std::to_string(max_bytes) +
                " such a file can be: not the file it should be");
  }
  std::string out(f.bytes, '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(f.fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : 0;
      ::close(f.fd);
      throw Error("cannot read " + what + " " + path + ": " + (err ? std::strerror(err) : "it shrank while being read"));
    }
    done += static_cast<size_t>(n);
  }
  ::close(f.fd);
  return out;
}

CheckedFile::CheckedFile(const std::string& path, Mode mode, const std::string& what) : path_(path), what_(what) {
  // O_NONBLOCK: a FIFO without a reader fails here (ENXIO) instead of waiting for one forever.
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (mode == Append ? O_APPEND : O_TRUNC), 0644);
  if (fd_ < 0 && errno == ENXIO) throw Error(what + " " + path + " is a FIFO that nothing reads: give the path of a file");
  if (fd_ < 0) fail("open", errno);
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
}

CheckedFile::~CheckedFile() {
  if (fd_ >= 0) ::close(fd_);
}

void CheckedFile::fail(const std::string& doing, int err) {
  if (fd_ >= 0) ::close(fd_), fd_ = -1;
  const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
  throw Error("cannot " + doing + " " + what_ + " " + path_ + ": " + std::strerror(err) +
              (full ? " (the disk or quota is full: free space, or write elsewhere)" : ""));
}

void CheckedFile::write(std::string_view bytes) {
  LT_CHECK(fd_ >= 0, "write to a closed file " + path_);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write", errno);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void CheckedFile::close(bool sync) {
  if (fd_ < 0) return;
  if (sync && ::fsync(fd_) != 0) fail("fsync", errno);
  const int fd = fd_;
  fd_ = -1;
  // A failed close can be the first report of a failed write (NFS, quotas): the file is not complete.
  if (::close(fd) != 0 && errno != EINTR) fail("close", errno);
}

void write_file_durably(const std::string& path, std::string_view bytes) {
  CheckedFile f(path, CheckedFile::Truncate, "file");
  f.write(bytes);
  f.close(true);
}

void sync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open directory " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0) throw Error("fsync of directory " + path + " failed: " + std::strerror(err));
}

}  // namespace llamatron
