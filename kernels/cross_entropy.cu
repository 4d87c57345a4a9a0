// Cross-entropy over the vocabulary, fused with its gradient: one block per row, an online
// max / sum-exp pass in fp32, then dlogits = scale * (softmax - onehot) written in bf16 (in place
// allowed); no fp32 probabilities of vocabulary size are stored. The row statistics can also be
// taken per vocabulary shard and the gradient formed from global statistics, which is how the
// vocab-parallel loss (#6) uses it. CPU reference: csrc/ops/cpu/cross_entropy.cpp.
// And the token embedding: forward gather and a deterministic backward (no float atomics).
#include "kernels/common.cuh"
#include "kernels/cross_entropy.cuh"

namespace llamatron::kernels {
namespace {

constexpr int kRowThreads = 256;

// This block's row: (max, sum of exp(x - max)) over x[0, v).
__device__ __forceinline__ void row_stats(const bf16* x, int v, float& row_max, float& row_sumexp) {
  float m = -INFINITY, s = 0.f;
  for (int j = threadIdx.x; j < v; j += blockDim.x) {  // online: rescale the running sum on a new max
    const float xj = __bfloat162float(x[j]);
    if (xj > m) {
      s = s * __expf(m - xj) + 1.f;
      m = xj;
    } else {
      s += __expf(xj - m);
    }
  }
  row_max = block_max(m);
  row_sumexp = block_sum(m == -INFINITY ? 0.f : s * __expf(m - row_max));
}

// dlogits over this shard from the global log-partition logz; `local_target` in [0, v) if this
// shard owns the target, else outside.
__device__ __forceinline__ void row_grad(const bf16* x, bf16* dx, int v, float logz, int local_target, float scale) {
  for (int j = threadIdx.x; j < v; j += blockDim.x) {
    const float p = __expf(__bfloat162float(x[j]) - logz);
    dx[j] = __float2bfloat16(scale * (p - (j == local_target ? 1.f : 0.f)));
  }
}

__global__ void cross_entropy_fused_kernel(const bf16* logits, const int* targets, bf16* dlogits, float* losses, int v,
                                           float scale, int ignore_index) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * v;
  const int target = targets[blockIdx.x];
  if (target == ignore_index) {
    for (int j = threadIdx.x; j < v; j += blockDim.x) dlogits[off + j] = __float2bfloat16(0.f);
    if (threadIdx.x == 0) losses[blockIdx.x] = 0.f;
    return;
  }
  const float target_logit = __bfloat162float(logits[off + target]);  // read before dlogits may overwrite it
  float row_max, row_sumexp;
  row_stats(logits + off, v, row_max, row_sumexp);  // ends with a barrier: every read above is done
  const float logz = row_max + __logf(row_sumexp);
  if (threadIdx.x == 0) losses[blockIdx.x] = logz - target_logit;
  row_grad(logits + off, dlogits + off, v, logz, target, scale);
}

// The column of this row's target within the shard's valid columns, or -1.
__device__ __forceinline__ int owned_target(int target, int vocab_start, int valid, int ignore_index) {
  const int local = target - vocab_start;
  return target != ignore_index && local >= 0 && local < valid ? local : -1;
}

__global__ void cross_entropy_stats_kernel(const bf16* logits, const int* targets, int v, int valid, int vocab_start,
                                           int ignore_index, float* row_max, float* row_sumexp, float* target_logit) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * v;
  float m, s;
  row_stats(logits + off, valid, m, s);
  if (threadIdx.x == 0) {
    const int local = owned_target(targets[blockIdx.x], vocab_start, valid, ignore_index);
    row_max[blockIdx.x] = m, row_sumexp[blockIdx.x] = s;
    target_logit[blockIdx.x] = local >= 0 ? __bfloat162float(logits[off + local]) : 0.f;
  }
}

__global__ void cross_entropy_grad_kernel(const bf16* logits, const int* targets, const float* logz, bf16* dlogits, int v,
                                          int valid, int vocab_start, float scale, int ignore_index) {
  const int64_t off = static_cast<int64_t>(blockIdx.x) * v;
  const bool ignored = targets[blockIdx.x] == ignore_index;
  const int first_zero = ignored ? 0 : valid;  // padding columns (or the whole ignored row) get zero
  for (int j = first_zero + threadIdx.x; j < v; j += blockDim.x) dlogits[off + j] = __float2bfloat16(0.f);
  if (!ignored)
    row_grad(logits + off, dlogits + off, valid, logz[blockIdx.x], owned_target(targets[blockIdx.x], vocab_start, valid, ignore_index),
             scale);
}

// Embedding: one thread per output element.
__global__ void embedding_forward_kernel(const int* ids, const bf16* table, bf16* y, int64_t n, int c) {
  const int64_t total = n * c;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int id = ids[i / c];  // negative: a token another vocab-parallel rank owns
    y[i] = id < 0 ? __float2bfloat16(0.f) : table[static_cast<int64_t>(id) * c + i % c];
  }
}

// Backward: each thread owns one column and walks the tokens in order, so repeated ids add up in
// the same order on every run (no atomics, deterministic).
__global__ void embedding_backward_kernel(const int* ids, const bf16* dy, float* dtable, int64_t n, int c) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= c) return;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] >= 0) dtable[static_cast<int64_t>(ids[i]) * c + col] += __bfloat162float(dy[i * c + col]);
}

}  // namespace

void cross_entropy_forward_backward(const bf16* logits, const int* targets, bf16* dlogits, float* losses, int rows, int v,
                                    float scale, int ignore_index, cudaStream_t s) {
  launch(LT_KERNEL(cross_entropy_fused_kernel), dim3(rows), dim3(kRowThreads), 0, s, logits, targets, dlogits, losses, v, scale, ignore_index);
}

void cross_entropy_shard_stats(const bf16* logits, const int* targets, int rows, int v, int valid, int vocab_start,
                               int ignore_index, float* row_max, float* row_sumexp, float* target_logit, cudaStream_t s) {
  launch(LT_KERNEL(cross_entropy_stats_kernel), dim3(rows), dim3(kRowThreads), 0, s, logits, targets, v, valid, vocab_start, ignore_index,
         row_max, row_sumexp, target_logit);
}

void cross_entropy_shard_grad(const bf16* logits, const int* targets, const float* logz, bf16* dlogits, int rows, int v,
                              int valid, int vocab_start, float scale, int ignore_index, cudaStream_t s) {
  launch(LT_KERNEL(cross_entropy_grad_kernel), dim3(rows), dim3(kRowThreads), 0, s, logits, targets, logz, dlogits, v, valid, vocab_start,
         scale, ignore_index);
}

void embedding_forward(const int* ids, const bf16* table, bf16* y, int64_t n, int c, cudaStream_t s) {
  launch(LT_KERNEL(embedding_forward_kernel), elementwise_grid(n * c), dim3(kElementwiseThreads), 0, s, ids, table, y, n, c);
}

void embedding_backward(const int* ids, const bf16* dy, float* dtable, int64_t n, int c, cudaStream_t s) {
  launch(LT_KERNEL(embedding_backward_kernel), dim3(blocks_for(c, 128)), dim3(128), 0, s, ids, dy, dtable, n, c);
}

}  // namespace llamatron::kernels
