#include "llamatron/zero1.h"

#include "llamatron/errors.h"
#include "llamatron/memory.h"

namespace llamatron {

Zero1::Zero1(ParamStore& params, Communicator& dp, DType wire) : params_(params), dp_(dp) {
  LT_CHECK(params.numel() % dp.size() == 0, "the parameter buffers are not padded into equal ZeRO-1 shards");
  size_ = params.numel() / dp.size();
  begin_ = dp.rank() * size_;
  const bool sharded = dp.size() > 1;
  MemoryScope scope(MemCategory::Grads);  // the summed gradient shard
  grad_ = sharded ? Tensor::zeros({size_}, DType::F32, params.device()) : params.grads_flat();
  if (sharded && wire == DType::BF16) {
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
}

void Zero1::reduce_gradients() {
  if (dp_.size() == 1) return;
  if (!wire_.defined()) return dp_.reduce_scatter(params_.grads_flat().raw(), grad_.raw(), size_, DType::F32, ReduceOp::Sum);
  wire_.copy_from(params_.grads_flat());
  dp_.reduce_scatter(wire_.raw(), wire_shard_.raw(), size_, DType::BF16, ReduceOp::Sum);
  grad_.copy_from(wire_shard_);
}

void Zero1::gather_params() {
  if (dp_.size() == 1) return;
  const Tensor& flat = params_.params_flat();
  dp_.all_gather(param_shard().raw(), flat.raw(), size_, flat.dtype());
}

}  // namespace llamatron
