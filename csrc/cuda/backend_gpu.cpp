// The GPU CUDA backend's factory: the real runtime, cuBLASLt, the nvcc-built kernels and NCCL.
#include "cuda/backend.h"
#include "cuda/comm_nccl.h"

namespace llamatron {

std::unique_ptr<DeviceBackend> make_linked_cuda_backend(std::string* why) {
  auto runtime = rt::make_cuda_runtime(why);
  if (!runtime) return nullptr;
  auto gemm = cuda::make_cublaslt_gemm(*runtime, why);
  if (!gemm) return nullptr;
  return std::make_unique<cuda::CudaBackend>(std::move(runtime), std::move(gemm), cuda::make_nccl_communicator);
}

}  // namespace llamatron
