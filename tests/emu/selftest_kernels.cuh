// Host entry points of the emulator self-test kernels (tests/emu/selftest_kernels.cu). Pointers
// are device pointers: host memory under the emulator.
#pragma once
#include <cstdint>

namespace llamatron::selftest {

// out[block] = sum of in[block * 256 .. +256): warp shuffles, then warp 0 alone shuffles again.
void block_reduce_sum(const float* in, float* out, int blocks);
// out = in^T for a rows x cols matrix, through a 32 x 33 shared tile (block 32 x 8).
void transpose(const float* in, float* out, int rows, int cols);
// Inclusive prefix sum of n <= 1024 ints in one block (warp scans with __shfl_up_sync).
void block_scan(const int* in, int* out, int n);
// Per warp of one 64-thread block: ballot, any and all of pred[thread]; out[warp * 3 + {0,1,2}].
void votes(const int* pred, unsigned* out);
// counter += 1 and sum += value[i] from `blocks` x 128 threads; max = max(value).
void atomics(const float* value, int blocks, int* counter, float* sum, int* max_bits);
// min_bits = min of value bits (CAS loop inside atomicMin), exch = some thread's index (atomicExch),
// and cas_count: each thread increments it with its own atomicCAS retry loop.
void more_atomics(int blocks, int* min_value, int* exch, int* cas_count);
// One block of 32: out[lane * 3 + {0,1,2}] = __shfl_down_sync(.., lane, 1, 16),
// __shfl_xor_sync(.., lane, 8, 16), __shfl_sync(.., lane, 3, 8).
void segmented_shuffles(int* out);
// A grid of (1, 70000): beyond CUDA's y limit (65535), must be rejected.
void oversized_grid();
// One warp: D = A (16x16 bf16, row-major) * B (16x8 bf16, row-major [k][n]) + C (16x8 fp32).
void mma_16x8x16(const uint16_t* a, const uint16_t* b, const float* c, float* d);
// One warp: ldmatrix of N 8x8 bf16 matrices stored row-major one after the other in shared
// memory (copied from `m`); out[lane * N + i] = register i of lane.
void ldmatrix_test(const uint16_t* m, uint32_t* out, int n, bool trans);
// Copies n_vec16 16-byte vectors global -> shared with cp.async, then shared -> out.
void cp_async_copy(const float* in, float* out, int n_vec16);
// GPU behaviour the emulator makes visible. out[0 .. n) = dynamic shared memory nobody wrote.
void read_unwritten_smem(float* out, int n);
// One thread: cp.async of in[0..4) as group 1 and in[4..8) as group 2 into shared memory;
// out[0..8) = the staged values after cp.async.wait_group 1, out[8..16) after wait_group 0.
void cp_async_groups(const float* in, float* out);
// One warp: ldmatrix.x4 with lane l passing row l of a [32][stride] bf16 shared tile (stride 0:
// every lane the same row, a broadcast); the bank conflicts land in emu::smem_stats().
void ldmatrix_rows(int stride);
// out[6 i + {0..5}] = __expf, __logf (of |x|), sin and cos by __sincosf (only where |x| <= 3.2,
// else left as they were), rsqrtf (of |x|) and kernels::ex2 of x[i], for i < n.
void fast_math(const float* x, float* out, int n);
// out[0] = __fdividef(a, b); __sincosf of x into out[1], out[2] (one thread).
void fast_divide_and_sincos(float a, float b, float x, float* out);
// Two warps: warp 1 overwrites shared values that warp 0 then reads into out[0 .. 32), with a
// __syncthreads between them only if `with_barrier` (without it, the result depends on timing).
void racy_overwrite(int* out, bool with_barrier);
// Misaligned accesses, each of which a GPU faults on: a 16-byte cp.async from in + 1 float, an
// ldmatrix row 8 bytes off, a float4 access through kernels::as_vec at p + 1.
void misaligned_cp_async(const float* in);
void misaligned_ldmatrix();
void misaligned_vector(float* p);
// Misuses the emulator must report (each throws): a __syncthreads reached at two different lines;
// half a warp in a full-mask shuffle while the other half waits at __syncthreads; a lane outside
// its shuffle mask; a block of 2048 threads.
void divergent_barrier();
void shuffle_deadlock();
// After blocks of 1024 threads: threads 32..63 of 64 exit, 0..15 shuffle with a full mask while
// 16..31 wait at __syncthreads (the report must count this block's 32 exited threads, no more).
void half_exit_deadlock();
// 64 threads each add 1 to *started, and thread 0 (the first to run) then faults on a misaligned
// float4 store at aligned + 1: threads that had not started by then never run.
void fail_first(int* started, float* aligned);
void lane_outside_mask();
void oversized_block();
// cp_async_copy of 4096 vectors (64 KiB of dynamic shared memory): fails unless `opt_in` first
// raises the kernel's limit above the default 48 KiB.
void big_smem_copy(const float* in, float* out, bool opt_in);
// Raises empty_kernel's dynamic shared memory limit to 228 KiB (above the 227 KiB maximum).
void oversized_smem_attribute();
// Raises empty_kernel's limit to the 227 KiB maximum, then launches it with 16 bytes more.
void smem_beyond_the_maximum();
// Writes buf[0 .. 63] from 64 threads: out of bounds when buf holds fewer (AddressSanitizer test).
void out_of_bounds_write(float* buf);
// 64 threads write a static __shared__ float[32] at their thread index (bounds-sanitizer test).
void shared_out_of_bounds_write();

}  // namespace llamatron::selftest
