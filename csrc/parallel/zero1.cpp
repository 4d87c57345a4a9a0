#include "llamatron/zero1.h"

#include <algorithm>

#include "llamatron/errors.h"
#include "llamatron/memory.h"
#include "llamatron/trace.h"

namespace llamatron {

int64_t Zero1::bucket_elements(int64_t numel) { return std::min<int64_t>((numel + 7) / 8, 25 * (1 << 20) / 4); }

Zero1::Zero1(ParamStore& params, Communicator& dp, const Zero1Options& options) : params_(params), dp_(dp), options_(options) {
  LT_CHECK(params.numel() % dp.size() == 0, "the parameter buffers are not padded into equal ZeRO-1 shards");
  size_ = params.numel() / dp.size();
  begin_ = dp.rank() * size_;
  const bool sharded = dp.size() > 1;
  MemoryScope scope(MemCategory::Grads);  // the summed gradient shard
  grad_ = sharded ? Tensor::zeros({size_}, DType::F32, params.device()) : params.grads_flat();
  if (sharded && options.wire == DType::BF16) {
    MemoryScope wire_scope(MemCategory::Comm);
    wire_ = Tensor::empty({params.numel()}, DType::BF16, params.device());
    wire_shard_ = Tensor::empty({size_}, DType::BF16, params.device());
  }
  if (params.master_is_params()) {
    master_ = params.params_flat().view(begin_, {size_});
  } else if (!sharded) {
    master_ = params.master_flat();
  } else {
    MemoryScope master_scope(MemCategory::Optimizer);
    master_ = Tensor::empty({size_}, DType::F32, params.device());
    master_.copy_from(params.master_flat().view(begin_, {size_}));
    params.release_master();
  }
  // Buckets from the end of the buffer down, each closed at the first parameter start that makes
  // it at least the bucket size (a bucket holds whole parameters; the last one starts at 0).
  const int64_t target = options.bucket_bytes > 0 ? std::max<int64_t>(1, options.bucket_bytes / 4) : bucket_elements(params.numel());
  int64_t end = params.numel();
  const std::vector<ParamSpec>& specs = params.specs();
  for (size_t i = specs.size(); i-- > 0;) {
    const bool packed = i > 0 && specs[i - 1].packed_with_next;  // a fused GEMM's halves stay together
    if (!packed && (end - specs[i].offset >= target || i == 0)) {
      buckets_.push_back({i == 0 ? 0 : specs[i].offset, end});
      end = specs[i].offset;
    }
  }
  if (buckets_.empty() || buckets_.back().begin != 0) buckets_.push_back({0, end});
  reducing_.resize(buckets_.size());
  gathering_.resize(buckets_.size());
}

Zero1::~Zero1() = default;  // the handles wait for what is in flight

std::vector<int64_t> Zero1::counts(const Bucket& b) const {
  std::vector<int64_t> c(dp_.size());
  for (int r = 0; r < dp_.size(); ++r) c[r] = std::max<int64_t>(0, std::min(b.end, (r + 1) * size_) - std::max(b.begin, r * size_));
  return c;
}

void Zero1::start_reduce(size_t i) {
  const Bucket& b = buckets_[i];
  const int64_t mine_lo = std::clamp(b.begin, begin_, begin_ + size_);  // this rank's part of the bucket, in its shard
  const int64_t n = b.end - b.begin;
  const Tensor& grads = params_.grads_flat();
  if (!wire_.defined()) {
    reducing_[i] = dp_.reduce_scatter_async(grads.view(b.begin, {n}).raw(), grad_.view(mine_lo - begin_, {0}).raw(), counts(b),
                                            DType::F32, ReduceOp::Sum);
  } else {
    wire_.view(b.begin, {n}).copy_from(grads.view(b.begin, {n}));
    reducing_[i] = dp_.reduce_scatter_async(wire_.view(b.begin, {n}).raw(), wire_shard_.view(mine_lo - begin_, {0}).raw(), counts(b),
                                            DType::BF16, ReduceOp::Sum);
  }
}

void Zero1::gradients_final_from(int64_t offset) {
  if (dp_.size() == 1 || !options_.overlap_grad_reduce) return;
  while (next_reduce_ < buckets_.size() && buckets_[next_reduce_].begin >= offset) start_reduce(next_reduce_++);
}

void Zero1::reduce_gradients() {
  if (dp_.size() == 1) return;
  while (next_reduce_ < buckets_.size()) start_reduce(next_reduce_++);
  for (Handle& h : reducing_) h.wait();
  next_reduce_ = 0;
  if (wire_.defined()) grad_.copy_from(wire_shard_);
}

void Zero1::gather_params() {
  if (dp_.size() == 1) return;
  const Tensor& flat = params_.params_flat();
  for (size_t i = buckets_.size(); i-- > 0;) {  // first-needed first: the forward starts at the buffer's beginning
    const Bucket& b = buckets_[i];
    const std::vector<int64_t> c = counts(b);
    const int64_t mine_lo = std::clamp(b.begin, begin_, begin_ + size_);
    gathering_[i] = dp_.all_gather_async(flat.view(mine_lo, {0}).raw(), flat.view(b.begin, {0}).raw(), c, flat.dtype());
  }
  if (!options_.overlap_param_gather) wait_params();
}

void Zero1::wait_params(int64_t lo, int64_t hi) {
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (gathering_[i].pending() && buckets_[i].begin < hi && lo < buckets_[i].end) gathering_[i].wait();
}

}  // namespace llamatron
