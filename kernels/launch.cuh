// One way to launch a kernel and to reach dynamic shared memory, in both worlds: nvcc compiles
// the real launch; g++ compiles the same kernel source against the emulator (kernels/emu).
#pragma once
#include <cstddef>
#include <utility>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include "kernels/emu/emu.h"
#include <driver_types.h>  // cudaStream_t (a host-side type; nothing of the runtime is called)
#endif

namespace llamatron::kernels {

// launch(kernel, grid, block, dynamic_smem_bytes, stream, args...): every kernel goes through here.
template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
            Args&&... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);  // the one raw launch
#else
  (void)stream;  // the emulator runs launches in order, synchronously
  ::llamatron::emu::launch(reinterpret_cast<const void*>(kernel), grid, block, smem_bytes, [&] { kernel(args...); });
#endif
}

// Lets `kernel` use up to `bytes` of dynamic shared memory (above the default 48 KiB).
template <typename... KernelArgs>
void set_max_dynamic_smem(void (*kernel)(KernelArgs...), size_t bytes) {
#if defined(__CUDACC__)
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
#else
  ::llamatron::emu::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), bytes);
#endif
}

// The block's dynamic shared memory (sized by the launch), as T*.
template <typename T>
__device__ __forceinline__ T* dynamic_smem() {
#if defined(__CUDACC__)
  extern __shared__ __align__(16) unsigned char lt_dynamic_smem[];
  return reinterpret_cast<T*>(lt_dynamic_smem);
#else
  return static_cast<T*>(::llamatron::emu::dynamic_smem());
#endif
}

}  // namespace llamatron::kernels
