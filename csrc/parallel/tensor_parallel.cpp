#include "llamatron/tensor_parallel.h"

#include <cmath>
#include <limits>
#include <vector>

#include "llamatron/ops.h"

namespace llamatron {

int64_t padded_vocab(int64_t vocab, int64_t tp) {
  if (tp == 1) return vocab;
  const int64_t multiple = 128 * tp;
  return (vocab + multiple - 1) / multiple * multiple;
}

void tp_all_reduce(Communicator& tp, const Tensor& x) {
  if (tp.size() == 1) return;
  if (x.dtype() == DType::F32) return tp.all_reduce(x.raw(), x.numel(), DType::F32, ReduceOp::Sum);
  Tensor wide = Tensor::empty(x.shape(), DType::F32, x.device());
  wide.copy_from(x);
  tp.all_reduce(wide.raw(), wide.numel(), DType::F32, ReduceOp::Sum);
  Tensor out = x;  // a view of the same storage
  out.copy_from(wide);
}

double vocab_parallel_cross_entropy(Communicator& tp, const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                    int64_t valid, float scale, int32_t ignore_index) {
  const int64_t n = targets.numel();
  Tensor row_max = Tensor::empty({n}, DType::F32), sums = Tensor::empty({2, n}, DType::F32);
  const Tensor row_sumexp = sums.view(0, {n}), target_logit = sums.view(n, {n});
  ops::cross_entropy_shard_stats(logits, targets, valid, vocab_start, row_max, row_sumexp, target_logit, ignore_index);
  std::vector<float> local_max(row_max.data<float>(), row_max.data<float>() + n);
  tp.all_reduce(row_max.raw(), n, DType::F32, ReduceOp::Max);
  const float *gmax = row_max.data<float>(), *lmax = local_max.data();
  float* s = row_sumexp.data<float>();
  for (int64_t r = 0; r < n; ++r)  // rescale this shard's sum to the global max (an all-padding shard adds 0)
    s[r] = lmax[r] == -std::numeric_limits<float>::infinity() ? 0.f : s[r] * std::exp(lmax[r] - gmax[r]);
  tp.all_reduce(sums.raw(), 2 * n, DType::F32, ReduceOp::Sum);
  Tensor logz = Tensor::empty({n}, DType::F32);
  const int32_t* t = targets.data<int32_t>();
  const float* tl = target_logit.data<float>();
  double loss = 0;
  for (int64_t r = 0; r < n; ++r) {
    logz.data<float>()[r] = gmax[r] + std::log(s[r]);
    if (t[r] != ignore_index) loss += static_cast<double>(logz.data<float>()[r]) - tl[r];
  }
  ops::cross_entropy_shard_grad(logits, targets, logz, logits, valid, vocab_start, scale, ignore_index);
  return loss;
}

}  // namespace llamatron
