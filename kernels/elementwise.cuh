// Elementwise launchers (bf16 storage, fp32 math); layouts as the CPU ops (csrc/ops/cpu/cpu_ops.h).
#pragma once
#include "kernels/types.h"

namespace llamatron::kernels {

// gate_up rows are [gate (f) | up (f)]; y [rows, f] = silu(gate) * up; dgate_up in the same layout.
void swiglu_forward(const bf16* gate_up, bf16* y, int64_t rows, int f, cudaStream_t stream);
void swiglu_backward(const bf16* dy, const bf16* gate_up, bf16* dgate_up, int64_t rows, int f, cudaStream_t stream);
// In place on x [b, t, h, d], rotate-half RoPE at positions offset + t, or positions[b * t + t]
// (packed documents' position ids, int32 [b, t] on the device) when given; cos/sin [> every position, d/2].
void rope_forward(bf16* x, const float* cos, const float* sin, int b, int t, int h, int d, int offset, cudaStream_t stream,
                  const int32_t* positions = nullptr);
void rope_backward(bf16* dx, const float* cos, const float* sin, int b, int t, int h, int d, int offset, cudaStream_t stream,
                   const int32_t* positions = nullptr);
// The same rotation with cos/sin computed in the kernel (sincosf of pos * theta^(-2i/d), fp32).
void rope_forward_sincos(bf16* x, float theta, int b, int t, int h, int d, int offset, cudaStream_t stream);
void add_inplace(bf16* y, const bf16* x, int64_t n, cudaStream_t stream);
// dst (fp32) += src: partial gradients summed in fp32 (context parallelism's ring).
void accumulate(float* dst, const bf16* src, int64_t n, cudaStream_t stream);
void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream);
// dst [b, a, k] = src [a, b, k] with the first two dimensions swapped (sequence parallelism's
// chunk-major <-> batch-major order).
void transpose_blocks(const bf16* src, bf16* dst, int64_t a, int64_t b, int64_t k, cudaStream_t stream);
void cast_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream);
void cast_to_f32(const bf16* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace llamatron::kernels
