// Elementwise kernels: SwiGLU (on the fused [gate | up] rows) forward and backward, RoPE in place,
// residual add, fp32 -> bf16 cast, the block transpose of sequence parallelism. Grid-stride loops, fp32 math, bf16 storage, 128-bit accesses
// where alignment allows (with a scalar tail).
// CPU references: csrc/ops/cpu/swiglu.cpp, rope.cpp, elementwise.cpp.
#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"

#include <type_traits>

namespace llamatron::kernels {
namespace {


__device__ __forceinline__ float sigmoid(float z) { return 1.0f / (1.0f + __expf(-z)); }

// Rows are [gate (f) | up (f)]; with f % 8 == 0 and aligned buffers, runs of 8 never cross a row.
__global__ void swiglu_forward_kernel(const bf16* gate_up, bf16* y, int64_t rows, int f, bool vec) {
  grid_stride_vec8(rows * f, vec, [&](int64_t i, int n) {
    const int64_t r = i / f, j = i % f;
    float g[8], u[8], out[8];
    load_bf16(gate_up + r * 2 * f + j, n, g);
    load_bf16(gate_up + r * 2 * f + f + j, n, u);
    for (int k = 0; k < n; ++k) out[k] = g[k] * sigmoid(g[k]) * u[k];
    store_bf16(y + i, n, out);
  });
}

__global__ void swiglu_backward_kernel(const bf16* dy, const bf16* gate_up, bf16* dgate_up, int64_t rows, int f, bool vec) {
  grid_stride_vec8(rows * f, vec, [&](int64_t i, int n) {
    const int64_t r = i / f, j = i % f;
    float g[8], u[8], d[8], dg[8], du[8];
    load_bf16(gate_up + r * 2 * f + j, n, g);
    load_bf16(gate_up + r * 2 * f + f + j, n, u);
    load_bf16(dy + i, n, d);
    for (int k = 0; k < n; ++k) {
      const float s = sigmoid(g[k]);
      dg[k] = d[k] * u[k] * (s + g[k] * s * (1.0f - s));
      du[k] = d[k] * g[k] * s;
    }
    store_bf16(dgate_up + r * 2 * f + j, n, dg);
    store_bf16(dgate_up + r * 2 * f + f + j, n, du);
  });
}

// One thread per rotated pair (b, t, h, i < D/2). sign = -1 is the backward (inverse rotation).
// cos/sin come from the tables, or (tables null) from sincosf of pos * theta^(-2i/d) in fp32.
__global__ void rope_kernel(bf16* x, const float* cos, const float* sin, float theta, int b, int t, int h, int d, int offset,
                            const int32_t* positions, float sign) {
  const int half = d / 2;
  const int64_t n = static_cast<int64_t>(b) * t * h * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n; idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const int64_t head = idx / half;  // (b, t, h) flattened
    const int pos = positions ? positions[head / h] : offset + static_cast<int>(head / h % t);
    bf16* v = x + head * d;
    float c, s;
    if (cos) {
      c = cos[static_cast<int64_t>(pos) * half + i];
      s = sin[static_cast<int64_t>(pos) * half + i];
    } else {
      // Reduce to [-pi, pi] (Cody-Waite, two-part 2*pi), then the fast intrinsic: sincosf's
      // large-argument path would put a stack frame (local memory) in this kernel.
      const float a = static_cast<float>(pos) * powf(theta, -2.0f * static_cast<float>(i) / static_cast<float>(d));
      const float k = rintf(a * 0.15915494309189535f);
      const float r = fmaf(-k, -1.7484555e-07f, fmaf(-k, 6.28318548f, a));  // 2*pi = hi + lo
      __sincosf(r, &s, &c);
    }
    s *= sign;
    const float x1 = __bfloat162float(v[i]), x2 = __bfloat162float(v[i + half]);
    v[i] = __float2bfloat16(x1 * c - x2 * s);
    v[i + half] = __float2bfloat16(x2 * c + x1 * s);
  }
}

template <typename T>
__global__ void accumulate_kernel(float* dst, const T* src, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<T, float>) dst[i] += src[i];
    else dst[i] += __bfloat162float(src[i]);
  }
}

__global__ void add_kernel(bf16* y, const bf16* x, int64_t n, bool vec) {
  grid_stride_vec8(n, vec, [&](int64_t i, int m) {
    float a[8], b[8];
    load_bf16(y + i, m, a);
    load_bf16(x + i, m, b);
    for (int k = 0; k < m; ++k) a[k] += b[k];
    store_bf16(y + i, m, a);
  });
}

__global__ void cast_kernel(const float* src, bf16* dst, int64_t n, bool vec) {
  grid_stride_vec8(n, vec, [&](int64_t i, int m) {
    float v[8];
    if (m == 8) {
      const float4 a = as_vec<float4>(src + i), b = as_vec<float4>(src + i + 4);
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
      v[0] = src[i];
    }
    store_bf16(dst + i, m, v);
  });
}

__global__ void widen_kernel(const bf16* src, float* dst, int64_t n, bool vec) {
  grid_stride_vec8(n, vec, [&](int64_t i, int m) {
    float v[8];
    load_bf16(src + i, m, v);
    if (m == 8) {
      as_vec<float4>(dst + i) = float4{v[0], v[1], v[2], v[3]};
      as_vec<float4>(dst + i + 4) = float4{v[4], v[5], v[6], v[7]};
    } else {
      dst[i] = v[0];
    }
  });
}

// dst [b, a, k] from src [a, b, k] (the first two dimensions swapped; k % 8 == 0 for `vec`, so a
// run of 8 never crosses a block). A copy: bit-exact.
__global__ void transpose_blocks_kernel(const bf16* src, bf16* dst, int64_t a, int64_t b, int64_t k, bool vec) {
  grid_stride_vec8(a * b * k, vec, [&](int64_t i, int n) {
    const int64_t e = i % k, block = i / k, ia = block % a, ib = block / a;  // dst block (ib, ia) is src block (ia, ib)
    const bf16* from = src + (ia * b + ib) * k + e;
    if (n == 8) {
      as_vec<Bf16x8>(dst + i) = as_vec<Bf16x8>(from);
    } else {
      dst[i] = from[0];
    }
  });
}

bool aligned(const void* a, const void* b, const void* c = nullptr) {
  return (reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) | reinterpret_cast<uintptr_t>(c)) % 16 == 0;
}

}  // namespace

void swiglu_forward(const bf16* gate_up, bf16* y, int64_t rows, int f, cudaStream_t s) {
  launch(LT_KERNEL(swiglu_forward_kernel), elementwise_grid(rows * f), dim3(kElementwiseThreads), 0, s, gate_up, y, rows, f,
         f % 8 == 0 && aligned(gate_up, y));
}
void swiglu_backward(const bf16* dy, const bf16* gate_up, bf16* dgate_up, int64_t rows, int f, cudaStream_t s) {
  launch(LT_KERNEL(swiglu_backward_kernel), elementwise_grid(rows * f), dim3(kElementwiseThreads), 0, s, dy, gate_up, dgate_up, rows, f,
         f % 8 == 0 && aligned(dy, gate_up, dgate_up));
}
void rope_forward(bf16* x, const float* cos, const float* sin, int b, int t, int h, int d, int offset, cudaStream_t s,
                  const int32_t* positions) {
  launch(LT_KERNEL(rope_kernel), elementwise_grid(static_cast<int64_t>(b) * t * h * (d / 2)), dim3(kElementwiseThreads), 0, s, x, cos, sin,
         0.0f, b, t, h, d, offset, positions, 1.0f);
}
void rope_backward(bf16* dx, const float* cos, const float* sin, int b, int t, int h, int d, int offset, cudaStream_t s,
                   const int32_t* positions) {
  launch(LT_KERNEL(rope_kernel), elementwise_grid(static_cast<int64_t>(b) * t * h * (d / 2)), dim3(kElementwiseThreads), 0, s, dx, cos, sin,
         0.0f, b, t, h, d, offset, positions, -1.0f);
}
void rope_forward_sincos(bf16* x, float theta, int b, int t, int h, int d, int offset, cudaStream_t s) {
  launch(LT_KERNEL(rope_kernel), elementwise_grid(static_cast<int64_t>(b) * t * h * (d / 2)), dim3(kElementwiseThreads), 0, s, x,
         static_cast<const float*>(nullptr), static_cast<const float*>(nullptr), theta, b, t, h, d, offset,
         static_cast<const int32_t*>(nullptr), 1.0f);
}
void add_inplace(bf16* y, const bf16* x, int64_t n, cudaStream_t s) { launch(LT_KERNEL(add_kernel), elementwise_grid(n), dim3(kElementwiseThreads), 0, s, y, x, n, aligned(y, x)); }
void accumulate(float* dst, const bf16* src, int64_t n, cudaStream_t s) {
  launch(LT_KERNEL(accumulate_kernel<bf16>), elementwise_grid(n), dim3(kElementwiseThreads), 0, s, dst, src, n);
}
void accumulate(float* dst, const float* src, int64_t n, cudaStream_t s) {
  launch(LT_KERNEL(accumulate_kernel<float>), elementwise_grid(n), dim3(kElementwiseThreads), 0, s, dst, src, n);
}
void transpose_blocks(const bf16* src, bf16* dst, int64_t a, int64_t b, int64_t k, cudaStream_t s) {
  launch(LT_KERNEL(transpose_blocks_kernel), elementwise_grid(a * b * k), dim3(kElementwiseThreads), 0, s, src, dst, a, b, k,
         k % 8 == 0 && aligned(src, dst));
}
void cast_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t s) {
  launch(LT_KERNEL(cast_kernel), elementwise_grid(n), dim3(kElementwiseThreads), 0, s, src, dst, n, aligned(src, dst));
}
void cast_to_f32(const bf16* src, float* dst, int64_t n, cudaStream_t s) {
  launch(LT_KERNEL(widen_kernel), elementwise_grid(n), dim3(kElementwiseThreads), 0, s, src, dst, n, aligned(src, dst));
}

}  // namespace llamatron::kernels
