// One message for a failed CUDA, cuBLAS or NCCL call: the call, the library's reason, file:line.
#pragma once
#include <string>

#include "llamatron/errors.h"

namespace llamatron::cuda {

[[noreturn]] inline void throw_failed_call(const char* call, const std::string& why, const char* file, int line) {
  throw Error(std::string(call) + " failed: " + why + " (" + file + ":" + std::to_string(line) + ")");
}

}  // namespace llamatron::cuda
