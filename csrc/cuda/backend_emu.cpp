// The emulated CUDA backend's factory: linked together with the emulator-built kernels. Its
// device groups are the emulated NCCL (comm_emulated.h): MPI moves the data, and a consumer that
// does not wait on a collective reads poison, as it could read garbage on a GPU.
#include "cuda/backend.h"
#include "cuda/comm_emulated.h"

namespace llamatron::cuda {

std::unique_ptr<CudaBackend> make_emulated_backend() {
  auto runtime = rt::make_emulated_runtime();
  rt::Runtime* device = runtime.get();  // owned by the backend, which outlives its groups
  return std::make_unique<CudaBackend>(std::move(runtime), make_emulated_gemm(),
                                       [device](std::unique_ptr<Communicator> host, rt::Stream compute) {
                                         return make_emulated_device_communicator(std::move(host), *device, compute);
                                       });
}

}  // namespace llamatron::cuda

namespace llamatron {

std::unique_ptr<DeviceBackend> make_linked_cuda_backend(std::string*) { return cuda::make_emulated_backend(); }

}  // namespace llamatron
