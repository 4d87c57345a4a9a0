// make_cuda_runtime in a build without the CUDA toolkit.
#include "cuda/runtime.h"

namespace llamatron::rt {

std::unique_ptr<Runtime> make_cuda_runtime(std::string* why) {
  if (why) *why = "this build has no CUDA (configure with -DLLAMATRON_CUDA=ON on a machine with the CUDA toolkit)";
  return nullptr;
}

}  // namespace llamatron::rt
