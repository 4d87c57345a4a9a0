// Which CUDA devices this process sees. On a machine without a GPU (or driver) the runtime
// reports an error instead of a count; we turn that into a sentence rather than a crash.
#include <cuda_runtime.h>

#include <string>

#include "cuda/device_info.h"

namespace llamatron::cuda {

std::string device_summary() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("no usable CUDA device (") + cudaGetErrorString(err) + ")";
  std::string out = std::to_string(count) + " CUDA device(s)";
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
      out += "; " + std::to_string(i) + ": " + p.name + " (sm_" + std::to_string(p.major * 10 + p.minor) + ")";
  }
  return out;
}

}  // namespace llamatron::cuda
