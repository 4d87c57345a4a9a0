// make_linked_cuda_backend in a binary built without any CUDA backend.
#include "llamatron/backend.h"

namespace llamatron {

std::unique_ptr<DeviceBackend> make_linked_cuda_backend(std::string* why) {
  if (why) *why = "this llamatron was built without CUDA (reconfigure with -DLLAMATRON_CUDA=ON, or use llamatron-emu for the emulated device)";
  return nullptr;
}

}  // namespace llamatron
