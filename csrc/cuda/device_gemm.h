// GEMM on device memory for the CUDA backend, with the CPU's row-major contract (GemmArgs,
// csrc/ops/cpu/gemm.h): bf16 A/B, fp32 accumulation, transposes as flags, C += when accumulate
// (wgrad into the gradient buffer, beta = 1). Two implementations: cuBLASLt on a GPU, and the
// emulated one (device memory is host memory; the CPU GEMM runs it, in stream order).
#pragma once
#include <memory>
#include <string>

#include "cuda/runtime.h"
#include "ops/cpu/gemm.h"

namespace llamatron::cuda {

class DeviceGemm {
 public:
  virtual ~DeviceGemm() = default;
  virtual void run(const cpu::GemmArgs& args, rt::Stream stream) = 0;
};

std::unique_ptr<DeviceGemm> make_emulated_gemm();
// nullptr with `why` set when this build or machine has no cuBLASLt-capable GPU.
std::unique_ptr<DeviceGemm> make_cublaslt_gemm(rt::Runtime& runtime, std::string* why);
// Why cuBLASLt cannot be opened and every entry point found (it is loaded on first use, not
// linked); empty when it can.
std::string cublaslt_missing();

}  // namespace llamatron::cuda
