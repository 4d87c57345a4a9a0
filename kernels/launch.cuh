// One way to launch a kernel and to reach dynamic shared memory, in both worlds: nvcc compiles
// the real launch; g++ compiles the same kernel source against the emulator (kernels/emu).
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include "kernels/emu/emu.h"
#include <driver_types.h>  // cudaStream_t (a host-side type; nothing of the runtime is called)
#endif

namespace llamatron::kernels {

// A kernel and its name as written at the call site, so a refused launch can say which kernel it
// was: LT_KERNEL(rope_kernel), LT_KERNEL(attention_fwd_kernel<D, MT>) (template arguments as written).
template <typename... KernelArgs>
struct Kernel {
  void (*fn)(KernelArgs...);
  const char* name;
};
template <typename... KernelArgs>
Kernel<KernelArgs...> named_kernel(void (*fn)(KernelArgs...), const char* name) {
  return {fn, name};
}
#define LT_KERNEL(...) ::llamatron::kernels::named_kernel((__VA_ARGS__), #__VA_ARGS__)

// The one-line report of a refused launch, the same in both worlds ("why" is the CUDA error string
// on a GPU, the emulator's explanation under g++):
//   launch of rope_kernel failed: grid (4,1,1), block (2048,1,1), dynamic smem 0 bytes: <why>
inline std::string launch_failure(const char* kernel, dim3 grid, dim3 block, size_t smem_bytes, const std::string& why) {
  const auto xyz = [](dim3 d) { return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")"; };
  return std::string("launch of ") + kernel + " failed: grid " + xyz(grid) + ", block " + xyz(block) + ", dynamic smem " +
         std::to_string(smem_bytes) + " bytes: " + why;
}
//   cudaFuncSetAttribute(attention_fwd_kernel<D, MT>, MaxDynamicSharedMemorySize, 240000 bytes) failed: <why>
inline std::string attribute_failure(const char* kernel, size_t bytes, const std::string& why) {
  return std::string("cudaFuncSetAttribute(") + kernel + ", MaxDynamicSharedMemorySize, " + std::to_string(bytes) +
         " bytes) failed: " + why;
}

// launch(LT_KERNEL(kernel), grid, block, dynamic_smem_bytes, stream, args...): every kernel goes
// through here. A launch the GPU refuses (a bad shape, too much shared memory, too many registers
// for the block, no image for this device) throws std::runtime_error(launch_failure(...)) instead
// of leaving the output unwritten. Errors of the kernel's execution surface later, at a sync.
template <typename... KernelArgs, typename... Args>
void launch(Kernel<KernelArgs...> kernel, dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, Args&&... args) {
#if defined(__CUDACC__)
  kernel.fn<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);  // the one raw launch
  if (const cudaError_t err = cudaGetLastError(); err != cudaSuccess)
    throw std::runtime_error(launch_failure(kernel.name, grid, block, smem_bytes, cudaGetErrorString(err)));
#else
  (void)stream;  // the emulator runs launches in order, synchronously
  try {
    ::llamatron::emu::launch(reinterpret_cast<const void*>(kernel.fn), grid, block, smem_bytes, [&] { kernel.fn(args...); });
  } catch (const ::llamatron::emu::LaunchRefused& e) {
    throw std::runtime_error(launch_failure(kernel.name, grid, block, smem_bytes, e.what()));
  }
#endif
}

// Lets `kernel` use up to `bytes` of dynamic shared memory (above the default 48 KiB); throws
// std::runtime_error(attribute_failure(...)) if refused (above the device's 227 KiB).
template <typename... KernelArgs>
void set_max_dynamic_smem(Kernel<KernelArgs...> kernel, size_t bytes) {
#if defined(__CUDACC__)
  const cudaError_t err = cudaFuncSetAttribute(kernel.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) throw std::runtime_error(attribute_failure(kernel.name, bytes, cudaGetErrorString(err)));
#else
  try {
    ::llamatron::emu::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel.fn), bytes);
  } catch (const ::llamatron::emu::LaunchRefused& e) {
    throw std::runtime_error(attribute_failure(kernel.name, bytes, e.what()));
  }
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
