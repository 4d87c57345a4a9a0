#pragma once
#include <string>

namespace llamatron::cuda {
// One line describing the visible CUDA devices, or why there are none.
std::string device_summary();
}  // namespace llamatron::cuda
