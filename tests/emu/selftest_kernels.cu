// Kernels that exercise each emulated feature. Plain CUDA: nvcc compiles this file for sm_80/sm_90
// and the emulator test compiles it, unchanged, with g++.
#include <cstdint>

#include "kernels/launch.cuh"
#include "kernels/common.cuh"
#include "kernels/ptx.cuh"
#include "tests/emu/selftest_kernels.cuh"

namespace llamatron::selftest {
namespace {

using kernels::launch;

__device__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void block_reduce_kernel(const float* in, float* out) {
  __shared__ float partial[8];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float v = warp_sum(in[blockIdx.x * blockDim.x + threadIdx.x]);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {  // the second stage: only warp 0 shuffles
    float s = lane < 8 ? partial[lane] : 0.0f;
    for (int mask = 16; mask > 0; mask /= 2) s += __shfl_xor_sync(0xffffffffu, s, mask);
    if (lane == 0) out[blockIdx.x] = s;
  }
}

__global__ void transpose_kernel(const float* in, float* out, int rows, int cols) {
  __shared__ float tile[32][33];  // +1 column: no bank conflicts on the transposed read
  const int x = blockIdx.x * 32 + threadIdx.x;
  for (int j = threadIdx.y; j < 32; j += 8) {
    const int y = blockIdx.y * 32 + j;
    if (x < cols && y < rows) tile[j][threadIdx.x] = in[y * cols + x];
  }
  __syncthreads();
  const int tx = blockIdx.y * 32 + threadIdx.x;
  for (int j = threadIdx.y; j < 32; j += 8) {
    const int ty = blockIdx.x * 32 + j;
    if (tx < rows && ty < cols) out[ty * rows + tx] = tile[threadIdx.x][j];
  }
}

__global__ void scan_kernel(const int* in, int* out, int n) {
  __shared__ int warp_totals[32];
  const int i = threadIdx.x, lane = i % 32, warp = i / 32;
  int v = i < n ? in[i] : 0;
  for (int d = 1; d < 32; d *= 2) {
    const int up = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += up;
  }
  if (lane == 31) warp_totals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int t = lane < static_cast<int>(blockDim.x / 32) ? warp_totals[lane] : 0;
    for (int d = 1; d < 32; d *= 2) {
      const int up = __shfl_up_sync(0xffffffffu, t, d);
      if (lane >= d) t += up;
    }
    warp_totals[lane] = t;
  }
  __syncthreads();
  if (warp > 0) v += warp_totals[warp - 1];
  if (i < n) out[i] = v;
}

__global__ void vote_kernel(const int* pred, unsigned* out) {
  const int p = pred[threadIdx.x], warp = threadIdx.x / 32;
  const unsigned b = __ballot_sync(0xffffffffu, p);
  const int any = __any_sync(0xffffffffu, p), all = __all_sync(0xffffffffu, p);
  if (threadIdx.x % 32 == 0) {
    out[warp * 3 + 0] = b;
    out[warp * 3 + 1] = static_cast<unsigned>(any);
    out[warp * 3 + 2] = static_cast<unsigned>(all);
  }
}

__global__ void atomics_kernel(const float* value, int* counter, float* sum, int* max_bits) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(counter, 1);
  atomicAdd(sum, value[i]);
  atomicMax(max_bits, __float_as_int(value[i]));  // non-negative floats order like their bits
}

__global__ void more_atomics_kernel(int* min_value, int* exch, int* cas_count) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  atomicMin(min_value, 1000 - i);
  atomicExch(exch, i);
  int old = *cas_count, assumed;
  do {
    assumed = old;
    old = atomicCAS(cas_count, assumed, assumed + 1);
  } while (old != assumed);
}

__global__ void segmented_shuffle_kernel(int* out) {
  const int lane = threadIdx.x;
  out[lane * 3 + 0] = __shfl_down_sync(0xffffffffu, lane, 1, 16);
  out[lane * 3 + 1] = __shfl_xor_sync(0xffffffffu, lane, 8, 16);
  out[lane * 3 + 2] = __shfl_sync(0xffffffffu, lane, 3, 8);
}

__global__ void mma_kernel(const uint16_t* a, const uint16_t* b, const float* c, float* d) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  auto pack = [](uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16; };
  uint32_t af[4], bf[2];
  for (int r = 0; r < 4; ++r) {  // register r holds a_{2r}, a_{2r+1}
    const int row = (r % 2 == 0) ? g : g + 8, col = 2 * t + (r >= 2 ? 8 : 0);
    af[r] = pack(a[row * 16 + col], a[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) {
    const int k = 2 * t + (r == 1 ? 8 : 0);
    bf[r] = pack(b[k * 8 + g], b[(k + 1) * 8 + g]);
  }
  float cf[4], df[4];
  for (int i = 0; i < 4; ++i) cf[i] = c[(i < 2 ? g : g + 8) * 8 + 2 * t + (i & 1)];
  kernels::mma_m16n8k16_bf16(df, af, bf, cf);
  for (int i = 0; i < 4; ++i) d[(i < 2 ? g : g + 8) * 8 + 2 * t + (i & 1)] = df[i];
}

template <int N, bool Trans>
__global__ void ldmatrix_kernel(const uint16_t* m, uint32_t* out) {
  __shared__ __align__(16) uint16_t tile[4 * 64];
  const int lane = threadIdx.x;
  for (int i = lane; i < N * 64; i += 32) tile[i] = m[i];
  __syncwarp();
  const int matrix = (lane / 8) % N, row = lane % 8;
  uint32_t r[N];
  kernels::ldmatrix<N, Trans>(r, tile + matrix * 64 + row * 8);
  for (int i = 0; i < N; ++i) out[lane * N + i] = r[i];
}

__global__ void cp_async_kernel(const float* in, float* out, int n_vec16) {
  float* staged = kernels::dynamic_smem<float>();
  for (int i = threadIdx.x; i < n_vec16; i += blockDim.x) kernels::cp_async<16>(staged + 4 * i, in + 4 * i);
  kernels::cp_async_commit();
  kernels::cp_async_wait<0>();
  __syncthreads();
  for (int i = threadIdx.x; i < 4 * n_vec16; i += blockDim.x) out[i] = staged[i];
}

__global__ void read_smem_kernel(float* out, int n) {
  const float* smem = kernels::dynamic_smem<float>();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = smem[i];
}

__global__ void cp_async_groups_kernel(const float* in, float* out) {
  float* staged = kernels::dynamic_smem<float>();
  kernels::cp_async<16>(staged, in);
  kernels::cp_async_commit();
  kernels::cp_async<16>(staged + 4, in + 4);
  kernels::cp_async_commit();
  kernels::cp_async_wait<1>();  // the first group has landed; the second may not have
  for (int i = 0; i < 8; ++i) out[i] = staged[i];
  kernels::cp_async_wait<0>();
  for (int i = 0; i < 8; ++i) out[8 + i] = staged[i];
}

__global__ void ldmatrix_rows_kernel(int stride) {
  const uint16_t* tile = kernels::dynamic_smem<uint16_t>();
  uint32_t r[4];
  kernels::ldmatrix<4, false>(r, tile + threadIdx.x * stride);
}

__global__ void fast_math_kernel(const float* x, float* out, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float* o = out + 6 * i;
    o[0] = __expf(x[i]);
    o[1] = __logf(fabsf(x[i]));
    if (fabsf(x[i]) <= 3.2f) __sincosf(x[i], &o[2], &o[3]);
    o[4] = rsqrtf(fabsf(x[i]));
    o[5] = kernels::ex2(x[i]);
  }
}

__global__ void divide_sincos_kernel(float a, float b, float x, float* out) {
  out[0] = __fdividef(a, b);
  __sincosf(x, &out[1], &out[2]);
}

__global__ void racy_overwrite_kernel(int* out, bool with_barrier) {
  __shared__ int values[32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp == 0) values[lane] = lane;
  __syncthreads();
  __syncwarp();
  if (warp == 1) values[lane] = 100 + lane;
  if (with_barrier) __syncthreads();
  if (warp == 0) out[lane] = values[lane];
}

__global__ void misaligned_cp_async_kernel(const float* in) {
  kernels::cp_async<16>(kernels::dynamic_smem<float>(), in + 1);
  kernels::cp_async_commit();
  kernels::cp_async_wait<0>();
}

__global__ void misaligned_ldmatrix_kernel() {
  uint32_t r[1];
  kernels::ldmatrix<1, false>(r, kernels::dynamic_smem<uint16_t>() + 4);
}

__global__ void misaligned_vector_kernel(float* p) { kernels::as_vec<float4>(p + 1) = float4{1.f, 2.f, 3.f, 4.f}; }

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

__global__ void shuffle_deadlock_kernel(int* sink) {
  if (threadIdx.x < 16) {
    sink[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
  } else {
    __syncthreads();
  }
}

__global__ void half_exit_deadlock_kernel(int* sink) {
  if (threadIdx.x >= 32) return;
  if (threadIdx.x < 16) sink[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
  else __syncthreads();
}

__global__ void fail_first_kernel(int* started, float* aligned) {
  atomicAdd(started, 1);
  if (threadIdx.x == 0) kernels::as_vec<float4>(aligned + 1) = float4{};
}

__global__ void lane_outside_mask_kernel(int* sink) { sink[threadIdx.x] = __shfl_sync(0x1u, 1, 0); }

__global__ void empty_kernel() {}

__global__ void write_one_per_thread(float* buf) { buf[threadIdx.x] = 1.0f; }

__global__ void write_shared_per_thread(float* sink) {
  __shared__ float tile[32];
  tile[threadIdx.x] = 1.0f;
  __syncthreads();
  sink[threadIdx.x] = tile[threadIdx.x % 32];
}

}  // namespace

void block_reduce_sum(const float* in, float* out, int blocks) { launch(LT_KERNEL(block_reduce_kernel), dim3(blocks), dim3(256), 0, nullptr, in, out); }
void transpose(const float* in, float* out, int rows, int cols) {
  launch(LT_KERNEL(transpose_kernel), dim3((cols + 31) / 32, (rows + 31) / 32), dim3(32, 8), 0, nullptr, in, out, rows, cols);
}
void block_scan(const int* in, int* out, int n) { launch(LT_KERNEL(scan_kernel), dim3(1), dim3((n + 31) / 32 * 32), 0, nullptr, in, out, n); }
void votes(const int* pred, unsigned* out) { launch(LT_KERNEL(vote_kernel), dim3(1), dim3(64), 0, nullptr, pred, out); }
void atomics(const float* value, int blocks, int* counter, float* sum, int* max_bits) {
  launch(LT_KERNEL(atomics_kernel), dim3(blocks), dim3(128), 0, nullptr, value, counter, sum, max_bits);
}
void more_atomics(int blocks, int* min_value, int* exch, int* cas_count) {
  launch(LT_KERNEL(more_atomics_kernel), dim3(blocks), dim3(128), 0, nullptr, min_value, exch, cas_count);
}
void segmented_shuffles(int* out) { launch(LT_KERNEL(segmented_shuffle_kernel), dim3(1), dim3(32), 0, nullptr, out); }
void oversized_grid() { launch(LT_KERNEL(empty_kernel), dim3(1, 70000), dim3(32), 0, nullptr); }
void mma_16x8x16(const uint16_t* a, const uint16_t* b, const float* c, float* d) { launch(LT_KERNEL(mma_kernel), dim3(1), dim3(32), 0, nullptr, a, b, c, d); }
template <int N>
void ldmatrix_launch(const uint16_t* m, uint32_t* out, bool trans) {
  launch(trans ? LT_KERNEL(ldmatrix_kernel<N, true>) : LT_KERNEL(ldmatrix_kernel<N, false>), dim3(1), dim3(32), 0, nullptr, m, out);
}
void ldmatrix_test(const uint16_t* m, uint32_t* out, int n, bool trans) {
  if (n == 1) ldmatrix_launch<1>(m, out, trans);
  if (n == 2) ldmatrix_launch<2>(m, out, trans);
  if (n == 4) ldmatrix_launch<4>(m, out, trans);
}
void cp_async_copy(const float* in, float* out, int n_vec16) {
  launch(LT_KERNEL(cp_async_kernel), dim3(1), dim3(64), static_cast<size_t>(n_vec16) * 16, nullptr, in, out, n_vec16);
}
void big_smem_copy(const float* in, float* out, bool opt_in) {
  if (opt_in) kernels::set_max_dynamic_smem(LT_KERNEL(cp_async_kernel), 64 * 1024);
  launch(LT_KERNEL(cp_async_kernel), dim3(1), dim3(64), 64 * 1024, nullptr, in, out, 4096);
}
void oversized_smem_attribute() { kernels::set_max_dynamic_smem(LT_KERNEL(empty_kernel), 228 * 1024); }
void smem_beyond_the_maximum() {
  kernels::set_max_dynamic_smem(LT_KERNEL(empty_kernel), 227 * 1024);
  launch(LT_KERNEL(empty_kernel), dim3(1), dim3(32), 227 * 1024 + 16, nullptr);
}
void read_unwritten_smem(float* out, int n) {
  launch(LT_KERNEL(read_smem_kernel), dim3(1), dim3(64), static_cast<size_t>(n) * sizeof(float), nullptr, out, n);
}
void cp_async_groups(const float* in, float* out) { launch(LT_KERNEL(cp_async_groups_kernel), dim3(1), dim3(1), 32, nullptr, in, out); }
void ldmatrix_rows(int stride) {
  launch(LT_KERNEL(ldmatrix_rows_kernel), dim3(1), dim3(32), static_cast<size_t>(32 * stride + 8) * 2, nullptr, stride);
}
void fast_math(const float* x, float* out, int n) { launch(LT_KERNEL(fast_math_kernel), dim3(1), dim3(64), 0, nullptr, x, out, n); }
void fast_divide_and_sincos(float a, float b, float x, float* out) {
  launch(LT_KERNEL(divide_sincos_kernel), dim3(1), dim3(1), 0, nullptr, a, b, x, out);
}
void racy_overwrite(int* out, bool with_barrier) {
  launch(LT_KERNEL(racy_overwrite_kernel), dim3(1), dim3(64), 0, nullptr, out, with_barrier);
}
void misaligned_cp_async(const float* in) { launch(LT_KERNEL(misaligned_cp_async_kernel), dim3(1), dim3(32), 64, nullptr, in); }
void misaligned_ldmatrix() { launch(LT_KERNEL(misaligned_ldmatrix_kernel), dim3(1), dim3(32), 256, nullptr); }
void misaligned_vector(float* p) { launch(LT_KERNEL(misaligned_vector_kernel), dim3(1), dim3(1), 0, nullptr, p); }
void divergent_barrier() { launch(LT_KERNEL(divergent_barrier_kernel), dim3(1), dim3(32), 0, nullptr); }
void shuffle_deadlock() {
  static int sink[64];
  launch(LT_KERNEL(shuffle_deadlock_kernel), dim3(1), dim3(64), 0, nullptr, sink);
}
void half_exit_deadlock() {
  static int sink[64];
  launch(LT_KERNEL(empty_kernel), dim3(64), dim3(1024), 0, nullptr);  // every worker has held 1024 threads since
  launch(LT_KERNEL(half_exit_deadlock_kernel), dim3(1), dim3(64), 0, nullptr, sink);
}
void fail_first(int* started, float* aligned) { launch(LT_KERNEL(fail_first_kernel), dim3(1), dim3(64), 0, nullptr, started, aligned); }
void lane_outside_mask() {
  static int sink[32];
  launch(LT_KERNEL(lane_outside_mask_kernel), dim3(1), dim3(32), 0, nullptr, sink);
}
void oversized_block() { launch(LT_KERNEL(empty_kernel), dim3(1), dim3(2048), 0, nullptr); }
void out_of_bounds_write(float* buf) { launch(LT_KERNEL(write_one_per_thread), dim3(1), dim3(64), 0, nullptr, buf); }
void shared_out_of_bounds_write() {
  static float sink[64];
  launch(LT_KERNEL(write_shared_per_thread), dim3(1), dim3(64), 0, nullptr, sink);
}

}  // namespace llamatron::selftest
