// A collective in flight (comm.h): waited once, or when it goes out of scope.
#include <cstdio>

#include "llamatron/comm.h"

namespace llamatron {

void Handle::wait() {
  if (!work_) return;
  std::unique_ptr<PendingWork> work = std::move(work_);
  work->wait();
}

// The buffers may be reused once the handle is gone, so an unwaited one waits here; an error then
// is reported but not thrown (this may run while another error unwinds, which is the one to see).
void Handle::settle() noexcept {
  try {
    wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llamatron: a collective failed: %s\n", e.what());
  }
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    settle();
    work_ = std::move(other.work_);
  }
  return *this;
}

Handle::~Handle() { settle(); }

}  // namespace llamatron
