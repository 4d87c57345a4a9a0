// ZeRO-1 over the data-parallel group (FACTS.md): the flat fp32 gradient buffer is reduce-scattered
// into equal contiguous shards; each DP rank keeps the fp32 master weights and Adam's m and v only
// for its shard, updates its slice of the parameters, and the slices are all-gathered. With one
// DP rank the shard is the whole buffer and nothing moves.
#pragma once
#include "llamatron/comm.h"
#include "llamatron/params.h"

namespace llamatron {

class Zero1 {
 public:
  // params must be padded to a multiple of dp.size() shards (ParamStore's `shards`). In bf16 mode
  // with dp > 1 this copies the shard of the master and releases the store's full master.
  // wire: the dtype the gradients are reduce-scattered in (fp32, or bf16: half the traffic, one
  // rounding of each gradient before the sum and one per pairwise add).
  Zero1(ParamStore& params, Communicator& dp, DType wire = DType::F32);
  int64_t begin() const { return begin_; }
  int64_t size() const { return size_; }
  const Tensor& grad_shard() const { return grad_; }      // summed over the DP group
  const Tensor& master_shard() const { return master_; }  // fp32; the parameters themselves in fp32 mode
  Tensor param_shard() const { return params_.params_flat().view(begin_, {size_}); }
  Communicator& group() const { return dp_; }

  void reduce_gradients();  // after the backward of every micro-batch
  void gather_params();     // after the shard's update

 private:
  ParamStore& params_;
  Communicator& dp_;
  int64_t begin_ = 0, size_ = 0;
  Tensor grad_, master_;
  Tensor wire_, wire_shard_;  // bf16 staging of the gradients (wire == bf16 only)
};

}  // namespace llamatron
