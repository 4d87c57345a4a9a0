// make_cublaslt_gemm in a build without the CUDA toolkit.
#include "cuda/device_gemm.h"

namespace llamatron::cuda {

std::unique_ptr<DeviceGemm> make_cublaslt_gemm(rt::Runtime&, std::string* why) {
  if (why) *why = "this build has no CUDA (configure with -DLLAMATRON_CUDA=ON on a machine with the CUDA toolkit)";
  return nullptr;
}

std::string cublaslt_missing() { return "this build has no CUDA"; }

}  // namespace llamatron::cuda
