// What a kernel's host-side launcher declaration needs, and nothing of the device world: plain
// host code (the CUDA backend, tests, benchmarks) includes launcher headers through this, whether
// the kernels behind them were built by nvcc or for the emulator.
#pragma once
#include <cstdint>

#include <cuda_bf16.h>      // __nv_bfloat16: host-usable
#include <driver_types.h>   // cudaStream_t

namespace llamatron::kernels {
using bf16 = __nv_bfloat16;
}  // namespace llamatron::kernels
