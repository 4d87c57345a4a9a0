// Small device helpers shared by the kernels: bf16 <-> fp32, 128-bit vector access, warp sums.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/launch.cuh"  // first: under g++ it sets up the emulator before any CUDA header
#include "kernels/types.h"

namespace llamatron::kernels {

// Eight bf16 values = 16 bytes: one 128-bit load or store when the address is 16-byte aligned.
struct alignas(16) Bf16x8 {
  bf16 v[8];
};

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// *p as one V (uint32_t, float4, uint4, Bf16x8): a single vector access, which on a GPU needs p
// aligned to sizeof(V) (the emulator checks, where x86 would not mind).
template <typename V, typename T>
__device__ __forceinline__ V& as_vec(T* p) {
#if !defined(__CUDACC__)
  ::llamatron::emu::check_aligned(p, sizeof(V), "vector access");
#endif
  return *reinterpret_cast<V*>(p);
}
template <typename V, typename T>
__device__ __forceinline__ const V& as_vec(const T* p) {
#if !defined(__CUDACC__)
  ::llamatron::emu::check_aligned(p, sizeof(V), "vector access");
#endif
  return *reinterpret_cast<const V*>(p);
}

// n = 8: one 128-bit access (p 16-byte aligned); n = 1: one element.
__device__ __forceinline__ void load_bf16(const bf16* p, int n, float* out) {
  if (n == 8) {
    const Bf16x8 v = as_vec<Bf16x8>(p);
    for (int k = 0; k < 8; ++k) out[k] = __bfloat162float(v.v[k]);
  } else {
    out[0] = __bfloat162float(p[0]);
  }
}

__device__ __forceinline__ void store_bf16(bf16* p, int n, const float* in) {
  if (n == 8) {
    Bf16x8 v;
    for (int k = 0; k < 8; ++k) v.v[k] = __float2bfloat16(in[k]);
    as_vec<Bf16x8>(p) = v;
  } else {
    p[0] = __float2bfloat16(in[0]);
  }
}

// Grid-stride over [0, total) calling f(i, n): runs of n = 8 (128-bit accesses) over the bulk when
// `vec` (the caller checked alignment and divisibility), then single elements for the tail.
template <typename F>
__device__ __forceinline__ void grid_stride_vec8(int64_t total, bool vec, F&& f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t bulk = vec ? total / 8 * 8 : 0;
  for (int64_t i = tid * 8; i < bulk; i += stride * 8) f(i, 8);
  for (int64_t i = bulk + tid; i < total; i += stride) f(i, 1);
}

// A reduction over the warp (xor butterfly: every lane gets the result) and over the block
// (warp trees, then warp 0 over the warp results: a fixed order, so deterministic), for any
// associative combine; blockDim.x a multiple of 32, at most 1024.
template <typename Combine>
__device__ __forceinline__ float warp_reduce(float v, Combine combine) {
  for (int offset = 16; offset > 0; offset /= 2) v = combine(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename Combine>
__device__ __forceinline__ float block_reduce(float v, float identity, Combine combine) {
  __shared__ float warp_results[32];
  __shared__ float total;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, combine);
  __syncthreads();  // warp_results may still be read by a previous call
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const float r = warp_reduce(lane < warps ? warp_results[lane] : identity, combine);
    if (lane == 0) total = r;
  }
  __syncthreads();
  return total;
}

struct Plus {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, Plus{}); }
__device__ __forceinline__ float block_sum(float v) { return block_reduce(v, 0.f, Plus{}); }
__device__ __forceinline__ float block_max(float v) { return block_reduce(v, -INFINITY, Max{}); }

inline int blocks_for(int64_t n, int per_block) { return static_cast<int>((n + per_block - 1) / per_block); }

// Elementwise kernels: 256 threads, grid-stride loops over at most 4096 blocks.
constexpr int kElementwiseThreads = 256;
inline dim3 elementwise_grid(int64_t n) {
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096));
}

}  // namespace llamatron::kernels
