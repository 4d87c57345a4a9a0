// Small device helpers shared by the kernels: bf16 <-> fp32, 128-bit vector access, warp sums.
#pragma once
#include <cstdint>

#include "kernels/launch.cuh"

#include <cuda_bf16.h>

namespace llamatron::kernels {

using bf16 = __nv_bfloat16;

// Eight bf16 values = 16 bytes: one 128-bit load or store when the address is 16-byte aligned.
struct alignas(16) Bf16x8 {
  bf16 v[8];
};

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace llamatron::kernels
