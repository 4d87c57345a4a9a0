// RMSNorm, forward and backward, bf16 storage and fp32 math (the CPU reference is
// csrc/ops/cpu/rmsnorm.cpp). One warp per row; rows are independent. The weight gradient is
// reduced deterministically: per-slice column partials, then a fixed-order sum of the slices.
#include "kernels/common.cuh"
#include "kernels/rmsnorm.cuh"

namespace llamatron::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kColumnsPerBlock = 256;

// Calls f(i, n) for this lane's share of [0, c): runs of 8 elements (one 128-bit access each) when
// the row is 16-byte aligned and c % 8 == 0, else single elements. n is 8 or 1.
template <typename F>
__device__ __forceinline__ void for_lane_chunks(int lane, int c, bool vec, F&& f) {
  if (vec) {
    for (int i = lane * 8; i < c; i += 32 * 8) f(i, 8);
  } else {
    for (int i = lane; i < c; i += 32) f(i, 1);
  }
}

__global__ void rmsnorm_forward_kernel(const bf16* x, const bf16* w, bf16* y, float* rstd, int rows, int c, float eps) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const bf16* xr = x + static_cast<int64_t>(row) * c;
  bf16* yr = y + static_cast<int64_t>(row) * c;
  const bool vec = c % 8 == 0 && aligned16(xr) && aligned16(yr) && aligned16(w);
  float ss = 0.f;
  for_lane_chunks(lane, c, vec, [&](int i, int n) {
    float v[8];
    load_bf16(xr + i, n, v);
    for (int k = 0; k < n; ++k) ss += v[k] * v[k];
  });
  const float rs = rsqrtf(warp_sum(ss) / c + eps);
  if (lane == 0) rstd[row] = rs;
  for_lane_chunks(lane, c, vec, [&](int i, int n) {
    float v[8], wv[8];
    load_bf16(xr + i, n, v);
    load_bf16(w + i, n, wv);
    for (int k = 0; k < n; ++k) v[k] = v[k] * rs * wv[k];
    store_bf16(yr + i, n, v);
  });
}

// dx = rstd * (dy*w - xhat * mean(dy*w*xhat)), xhat = x * rstd.
__global__ void rmsnorm_backward_dx_kernel(const bf16* dy, const bf16* x, const bf16* w, const float* rstd, bf16* dx,
                                           int rows, int c, bool accumulate) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t off = static_cast<int64_t>(row) * c;
  const bool vec = c % 8 == 0 && aligned16(dy + off) && aligned16(x + off) && aligned16(dx + off) && aligned16(w);
  const float rs = rstd[row];
  float dot = 0.f;
  for_lane_chunks(lane, c, vec, [&](int i, int n) {
    float g[8], xv[8], wv[8];
    load_bf16(dy + off + i, n, g);
    load_bf16(x + off + i, n, xv);
    load_bf16(w + i, n, wv);
    for (int k = 0; k < n; ++k) dot += g[k] * wv[k] * xv[k];
  });
  const float kf = warp_sum(dot) * rs * rs / c;
  for_lane_chunks(lane, c, vec, [&](int i, int n) {
    float g[8], xv[8], wv[8], out[8];
    load_bf16(dy + off + i, n, g);
    load_bf16(x + off + i, n, xv);
    load_bf16(w + i, n, wv);
    if (accumulate) load_bf16(dx + off + i, n, out);
    for (int k = 0; k < n; ++k) {
      const float d = rs * (g[k] * wv[k] - xv[k] * kf);
      out[k] = accumulate ? out[k] + d : d;
    }
    store_bf16(dx + off + i, n, out);
  });
}

// partial[slice][col] = sum over the slice's rows, in order, of dy * x * rstd.
__global__ void rmsnorm_dweight_partial_kernel(const bf16* dy, const bf16* x, const float* rstd, float* partial, int rows,
                                               int c, int rows_per_slice) {
  const int col = blockIdx.x * kColumnsPerBlock + threadIdx.x, slice = blockIdx.y;
  if (col >= c) return;
  const int r0 = slice * rows_per_slice, r1 = min(rows, r0 + rows_per_slice);
  float acc = 0.f;
  for (int r = r0; r < r1; ++r) {
    const int64_t at = static_cast<int64_t>(r) * c + col;
    acc += __bfloat162float(dy[at]) * __bfloat162float(x[at]) * rstd[r];
  }
  partial[static_cast<int64_t>(slice) * c + col] = acc;
}

__global__ void rmsnorm_dweight_reduce_kernel(const float* partial, float* dw, int c, int slices) {
  const int col = blockIdx.x * kColumnsPerBlock + threadIdx.x;
  if (col >= c) return;
  float acc = 0.f;
  for (int s = 0; s < slices; ++s) acc += partial[static_cast<int64_t>(s) * c + col];
  dw[col] += acc;
}

}  // namespace

int rmsnorm_dweight_slices(int rows) { return rows < 64 ? 1 : (rows < 4096 ? blocks_for(rows, 64) : 64); }

void rmsnorm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int rows, int c, float eps, cudaStream_t stream) {
  launch(LT_KERNEL(rmsnorm_forward_kernel), dim3(blocks_for(rows, kWarpsPerBlock)), dim3(32 * kWarpsPerBlock), 0, stream, x, w, y, rstd,
         rows, c, eps);
}

void rmsnorm_backward(const bf16* dy, const bf16* x, const bf16* w, const float* rstd, bf16* dx, float* dw,
                      float* partial, int rows, int c, bool accumulate_dx, cudaStream_t stream) {
  launch(LT_KERNEL(rmsnorm_backward_dx_kernel), dim3(blocks_for(rows, kWarpsPerBlock)), dim3(32 * kWarpsPerBlock), 0, stream, dy, x, w,
         rstd, dx, rows, c, accumulate_dx);
  const int slices = rmsnorm_dweight_slices(rows), rows_per_slice = blocks_for(rows, slices);
  launch(LT_KERNEL(rmsnorm_dweight_partial_kernel), dim3(blocks_for(c, kColumnsPerBlock), slices), dim3(kColumnsPerBlock), 0, stream,
         dy, x, rstd, partial, rows, c, rows_per_slice);
  launch(LT_KERNEL(rmsnorm_dweight_reduce_kernel), dim3(blocks_for(c, kColumnsPerBlock)), dim3(kColumnsPerBlock), 0, stream, partial,
         dw, c, slices);
}

}  // namespace llamatron::kernels
