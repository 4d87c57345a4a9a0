#include "llamatron/tensor_parallel.h"

#include <cmath>
#include <limits>

#include "llamatron/ops.h"

namespace llamatron {

double vocab_parallel_cross_entropy(Communicator& tp, const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                    int64_t valid, float scale, int32_t ignore_index) {
  const int64_t n = targets.numel();
  const Device dev = logits.device();
  // Per-row statistics where the logits are; the O(rows) combination on the host.
  Tensor row_max = Tensor::empty({n}, DType::F32, dev), sums = Tensor::empty({2, n}, DType::F32, dev);
  ops::cross_entropy_shard_stats(logits, targets, valid, vocab_start, row_max, sums.view(0, {n}), sums.view(n, {n}), ignore_index);
  Tensor local_max = Tensor::empty({n}, DType::F32), global_max = Tensor::empty({n}, DType::F32),
         host_sums = Tensor::empty({2, n}, DType::F32);
  local_max.copy_from(row_max);
  global_max.copy_from(row_max);
  host_sums.copy_from(sums);
  tp.all_reduce(global_max.raw(), n, DType::F32, ReduceOp::Max);
  const float *gmax = global_max.data<float>(), *lmax = local_max.data<float>();
  float* s = host_sums.data<float>();  // [sum exp | target logit]
  for (int64_t r = 0; r < n; ++r)  // rescale this shard's sum to the global max (an all-padding shard adds 0)
    s[r] = lmax[r] == -std::numeric_limits<float>::infinity() ? 0.f : s[r] * std::exp(lmax[r] - gmax[r]);
  tp.all_reduce(host_sums.raw(), 2 * n, DType::F32, ReduceOp::Sum);  // one fused sum: sums and target logits
  Tensor logz = Tensor::empty({n}, DType::F32);
  Tensor host_targets = Tensor::empty({n}, DType::I32);
  host_targets.copy_from(targets);
  const int32_t* t = host_targets.data<int32_t>();
  double loss = 0;
  for (int64_t r = 0; r < n; ++r) {
    logz.data<float>()[r] = gmax[r] + std::log(s[r]);
    if (t[r] != ignore_index) loss += static_cast<double>(logz.data<float>()[r]) - s[n + r];
  }
  Tensor logz_dev = logz;
  if (dev != Device::CPU) {
    logz_dev = Tensor::empty({n}, DType::F32, dev);
    logz_dev.copy_from(logz);
  }
  ops::cross_entropy_shard_grad(logits, targets, logz_dev, logits, valid, vocab_start, scale, ignore_index);
  return loss;
}

}  // namespace llamatron
