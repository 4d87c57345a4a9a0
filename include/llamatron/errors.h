// User-facing errors. A `throw Error(...)` carries one sentence that names the problem and the fix;
// the CLI prints it on one line and exits 1. `LT_CHECK` is for programmer mistakes inside the engine.
#pragma once
#include <stdexcept>
#include <string>

namespace llamatron {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An Error only this rank meets (a file only rank 0 writes, this node's disk): the others may wait
// for it in a collective, so under mpirun the CLI prints it with the rank and aborts the job.
struct RankError : Error {
  using Error::Error;
};

[[noreturn]] void internal_error(const char* cond, const char* file, int line, const std::string& msg);

}  // namespace llamatron

#define LT_CHECK(cond, msg)                                                   \
  do {                                                                        \
    if (!(cond)) ::llamatron::internal_error(#cond, __FILE__, __LINE__, msg); \
  } while (0)
