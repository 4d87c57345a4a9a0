// The emulated CUDA backend's factory: linked together with the emulator-built kernels.
#include "cuda/backend.h"

namespace llamatron::cuda {

std::unique_ptr<CudaBackend> make_emulated_backend() {
  return std::make_unique<CudaBackend>(rt::make_emulated_runtime(), make_emulated_gemm());
}

}  // namespace llamatron::cuda

namespace llamatron {

std::unique_ptr<DeviceBackend> make_linked_cuda_backend(std::string*) { return cuda::make_emulated_backend(); }

}  // namespace llamatron
