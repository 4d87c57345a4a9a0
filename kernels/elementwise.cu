// Elementwise kernels: SwiGLU (on the fused [gate | up] rows) forward and backward, RoPE in place,
// residual add, fp32 -> bf16 cast. Grid-stride loops, fp32 math, bf16 storage.
// CPU references: csrc/ops/cpu/swiglu.cpp, rope.cpp, elementwise.cpp.
#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"

namespace llamatron::kernels {
namespace {


__device__ __forceinline__ float sigmoid(float z) { return 1.0f / (1.0f + __expf(-z)); }

__global__ void swiglu_forward_kernel(const bf16* gate_up, bf16* y, int64_t rows, int f) {
  const int64_t n = rows * f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / f, j = i % f;
    const float g = __bfloat162float(gate_up[r * 2 * f + j]), u = __bfloat162float(gate_up[r * 2 * f + f + j]);
    y[i] = __float2bfloat16(g * sigmoid(g) * u);
  }
}

__global__ void swiglu_backward_kernel(const bf16* dy, const bf16* gate_up, bf16* dgate_up, int64_t rows, int f) {
  const int64_t n = rows * f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / f, j = i % f;
    const float g = __bfloat162float(gate_up[r * 2 * f + j]), u = __bfloat162float(gate_up[r * 2 * f + f + j]);
    const float d = __bfloat162float(dy[i]), s = sigmoid(g);
    dgate_up[r * 2 * f + j] = __float2bfloat16(d * u * (s + g * s * (1.0f - s)));
    dgate_up[r * 2 * f + f + j] = __float2bfloat16(d * g * s);
  }
}

// One thread per rotated pair (b, t, h, i < D/2). sign = -1 is the backward (inverse rotation).
__global__ void rope_kernel(bf16* x, const float* cos, const float* sin, int b, int t, int h, int d, int offset, float sign) {
  const int half = d / 2;
  const int64_t n = static_cast<int64_t>(b) * t * h * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n; idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const int64_t head = idx / half;  // (b, t, h) flattened
    const int pos = offset + static_cast<int>(head / h % t);
    bf16* v = x + head * d;
    const float c = cos[static_cast<int64_t>(pos) * half + i], s = sign * sin[static_cast<int64_t>(pos) * half + i];
    const float x1 = __bfloat162float(v[i]), x2 = __bfloat162float(v[i + half]);
    v[i] = __float2bfloat16(x1 * c - x2 * s);
    v[i + half] = __float2bfloat16(x2 * c + x1 * s);
  }
}

__global__ void add_kernel(bf16* y, const bf16* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + __bfloat162float(x[i]));
}

__global__ void cast_kernel(const float* src, bf16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16(src[i]);
}

}  // namespace

void swiglu_forward(const bf16* gate_up, bf16* y, int64_t rows, int f, cudaStream_t s) {
  launch(swiglu_forward_kernel, elementwise_grid(rows * f), dim3(kElementwiseThreads), 0, s, gate_up, y, rows, f);
}
void swiglu_backward(const bf16* dy, const bf16* gate_up, bf16* dgate_up, int64_t rows, int f, cudaStream_t s) {
  launch(swiglu_backward_kernel, elementwise_grid(rows * f), dim3(kElementwiseThreads), 0, s, dy, gate_up, dgate_up, rows, f);
}
void rope_forward(bf16* x, const float* cos, const float* sin, int b, int t, int h, int d, int offset, cudaStream_t s) {
  launch(rope_kernel, elementwise_grid(static_cast<int64_t>(b) * t * h * (d / 2)), dim3(kElementwiseThreads), 0, s, x, cos, sin, b, t, h, d, offset, 1.0f);
}
void rope_backward(bf16* dx, const float* cos, const float* sin, int b, int t, int h, int d, int offset, cudaStream_t s) {
  launch(rope_kernel, elementwise_grid(static_cast<int64_t>(b) * t * h * (d / 2)), dim3(kElementwiseThreads), 0, s, dx, cos, sin, b, t, h, d, offset, -1.0f);
}
void add_inplace(bf16* y, const bf16* x, int64_t n, cudaStream_t s) { launch(add_kernel, elementwise_grid(n), dim3(kElementwiseThreads), 0, s, y, x, n); }
void cast_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t s) {
  launch(cast_kernel, elementwise_grid(n), dim3(kElementwiseThreads), 0, s, src, dst, n);
}

}  // namespace llamatron::kernels
