// What the CUDA emulator costs per primitive, so the CI time of emulated kernel tests stays
// predictable: ns per __syncthreads (per thread), per warp shuffle, per emulated mma.sync.
// CPU figures only: this measures the emulator, not a GPU.
#include <chrono>
#include <cstdio>

#include "kernels/launch.cuh"
#include "kernels/ptx.cuh"

namespace {

constexpr int kIters = 200;

__global__ void barrier_loop() {
  for (int i = 0; i < kIters; ++i) __syncthreads();
}

__global__ void shuffle_loop(float* out) {
  float v = static_cast<float>(threadIdx.x);
  for (int i = 0; i < kIters; ++i) v += __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void mma_loop(float* out) {
  const uint32_t a[4] = {0x3f803f80u, 0x3f803f80u, 0x3f803f80u, 0x3f803f80u}, b[2] = {0x3f803f80u, 0x3f803f80u};
  float c[4] = {0, 0, 0, 0};
  for (int i = 0; i < kIters; ++i) llamatron::kernels::mma_m16n8k16_bf16(c, a, b, c);
  out[threadIdx.x] = c[0];
}

template <typename F>
double ns_per(F&& run, double events) {
  run();  // warm up: stacks and workers
  const auto t0 = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / events;
}

}  // namespace

int main() {
  using llamatron::kernels::launch;
  static float out[256];
  const int threads = 256;
  std::printf("# CUDA emulator cost on this CPU (not a GPU figure), block of %d threads, 1 block\n", threads);
  std::printf("emu __syncthreads: %.0f ns per thread per barrier (a fiber switch out and back)\n",
              ns_per([&] { launch(LT_KERNEL(barrier_loop), dim3(1), dim3(threads), 0, nullptr); }, 1.0 * kIters * threads));
  std::printf("emu __shfl_xor_sync: %.0f ns per lane per shuffle\n",
              ns_per([&] { launch(LT_KERNEL(shuffle_loop), dim3(1), dim3(threads), 0, nullptr, out); }, 1.0 * kIters * threads));
  std::printf("emu mma.sync m16n8k16: %.0f ns per warp-level mma\n",
              ns_per([&] { launch(LT_KERNEL(mma_loop), dim3(1), dim3(32), 0, nullptr, out); }, 1.0 * kIters));
  return 0;
}
