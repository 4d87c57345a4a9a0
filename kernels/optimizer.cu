// The optimizer step on flat buffers: global grad-norm partial sums (deterministic two-pass) and
// fused AdamW (bf16 params, fp32 master / m / v, bf16 or fp32 grads, clip scale fused, per-range
// weight decay, optional stochastic rounding of the bf16 write-back). CPU reference:
// csrc/ops/cpu/adamw.cpp and sum_squares in elementwise.cpp.
#include "kernels/common.cuh"
#include "kernels/optimizer.cuh"

namespace llamatron::kernels {
namespace {

constexpr int kNormBlocks = 256;  // partials of the grad norm: a fixed count keeps the sum order fixed

template <typename G>
__device__ __forceinline__ float to_float(G g) {
  if constexpr (sizeof(G) == 2) {
    return __bfloat162float(g);
  } else {
    return g;
  }
}

// Block b sums squares over its contiguous chunk; the second pass adds the partials in order.
template <typename G>
__global__ void sum_squares_partial_kernel(const G* x, int64_t n, float* partial) {
  const int64_t chunk = (n + gridDim.x - 1) / gridDim.x, begin = blockIdx.x * chunk, end = min(n, begin + chunk);
  float acc = 0.f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float v = to_float(x[i]);
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(const float* partial, int count, float* out) {
  float acc = 0.f;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

__device__ __forceinline__ uint32_t hash32(uint32_t x) {  // a murmur3-style finalizer
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  x ^= x >> 16;
  return x;
}

// Rounds w to bf16 up or down with probability proportional to the distance (unbiased):
// add 16 random bits below the kept ones, then truncate.
__device__ __forceinline__ bf16 stochastic_round(float w, uint32_t random) {
  const uint32_t bits = __float_as_uint(w) + (random & 0xffffu);
  return __ushort_as_bfloat16(static_cast<unsigned short>(bits >> 16));
}

template <typename G>
__global__ void adamw_kernel(float* master, const G* grad, float* m, float* v, bf16* param, int64_t n,
                             const int64_t* range_end, const float* range_wd, int ranges, AdamWArgs a) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int lo = 0, hi = ranges - 1;  // the first range whose end is past i
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (range_end[mid] > i) hi = mid;
      else lo = mid + 1;
    }
    const float g = to_float(grad[i]) * a.grad_scale;
    const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float decay = 1.0f - a.lr * range_wd[lo];
    const float w = master[i] * decay - a.step_size * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
    master[i] = w;
    param[i] = a.stochastic_rounding ? stochastic_round(w, hash32(a.seed ^ hash32(static_cast<uint32_t>(i) * 0x9e3779b9u)))
                                     : __float2bfloat16(w);
  }
}

}  // namespace

AdamWArgs make_adamw_args(float lr, float beta1, float beta2, float eps, int64_t step, float grad_scale,
                          bool stochastic_rounding, uint32_t seed) {
  const float bc1 = 1.0f - static_cast<float>(std::pow(beta1, step));
  const float bc2_sqrt = std::sqrt(1.0f - static_cast<float>(std::pow(beta2, step)));
  return {lr, beta1, beta2, eps, lr / bc1, bc2_sqrt, grad_scale, stochastic_rounding, seed};
}

int sum_squares_scratch_floats() { return kNormBlocks + 1; }

template <typename G>
void sum_squares(const G* x, int64_t n, float* scratch, float* out, cudaStream_t s) {
  launch(LT_KERNEL(sum_squares_partial_kernel<G>), dim3(kNormBlocks), dim3(kElementwiseThreads), 0, s, x, n, scratch);
  launch(LT_KERNEL(sum_partials_kernel), dim3(1), dim3(kElementwiseThreads), 0, s, scratch, kNormBlocks, out);
}

template <typename G>
void adamw_step(float* master, const G* grad, float* m, float* v, bf16* param, int64_t n, const int64_t* range_end,
                const float* range_wd, int ranges, const AdamWArgs& args, cudaStream_t s) {
  launch(LT_KERNEL(adamw_kernel<G>), elementwise_grid(n), dim3(kElementwiseThreads), 0, s, master, grad, m, v, param, n, range_end, range_wd, ranges, args);
}

template void sum_squares<float>(const float*, int64_t, float*, float*, cudaStream_t);
template void sum_squares<bf16>(const bf16*, int64_t, float*, float*, cudaStream_t);
template void adamw_step<float>(float*, const float*, float*, float*, bf16*, int64_t, const int64_t*, const float*, int,
                                const AdamWArgs&, cudaStream_t);
template void adamw_step<bf16>(float*, const bf16*, float*, float*, bf16*, int64_t, const int64_t*, const float*, int,
                               const AdamWArgs&, cudaStream_t);

}  // namespace llamatron::kernels
