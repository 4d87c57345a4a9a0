// ZeRO-1 over the data-parallel group (FACTS.md): the flat fp32 gradient buffer is reduce-scattered
// into equal contiguous shards; each DP rank keeps the fp32 master weights and Adam's m and v only
// for its shard, updates its slice of the parameters, and the slices are all-gathered. With one
// DP rank the shard is the whole buffer and nothing moves.
//
// Both collectives go bucket by bucket (docs/parallelism.md, "Overlap"): contiguous ranges of the
// flat buffers that end on parameter boundaries, made in reverse parameter order (the order the
// backward finishes them). The buckets are the same whether communication overlaps or not, so
// every sum is the same sum: overlap on and off train bit-identically.
#pragma once
#include <vector>

#include "llamatron/comm.h"
#include "llamatron/params.h"

namespace llamatron {

struct Zero1Options {
  // The dtype the gradients are reduce-scattered in (fp32, or bf16: half the traffic, one
  // rounding of each gradient before the sum and one per pairwise add).
  DType wire = DType::F32;
  int64_t bucket_bytes = 0;          // fp32 gradient bytes per bucket; 0: automatic (bucket_elements())
  bool overlap_grad_reduce = true;   // a bucket's reduce-scatter starts when the backward has finished it
  bool overlap_param_gather = true;  // a bucket's all-gather is waited on just before its first use
};

class Zero1 {
 public:
  // params must be padded to a multiple of dp.size() shards (ParamStore's `shards`). In bf16 mode
  // with dp > 1 this copies the shard of the master and releases the store's full master.
  Zero1(ParamStore& params, Communicator& dp, const Zero1Options& options = {});
  ~Zero1();
  int64_t begin() const { return begin_; }
  int64_t size() const { return size_; }
  const Tensor& grad_shard() const { return grad_; }      // summed over the DP group
  const Tensor& master_shard() const { return master_; }  // fp32; the parameters themselves in fp32 mode
  Tensor param_shard() const { return params_.params_flat().view(begin_, {size_}); }
  Communicator& group() const { return dp_; }

  struct Bucket {
    int64_t begin, end;  // flat-buffer elements
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }  // the first is the flat buffer's end
  // The automatic bucket size: an eighth of the buffer, at most 25 MiB of fp32 gradients.
  static int64_t bucket_elements(int64_t numel);

  // During the last micro-batch's backward: every gradient at flat offsets >= `offset` is final.
  // Starts the reduce-scatter of the buckets that lie there (overlap_grad_reduce; else nothing).
  void gradients_final_from(int64_t offset);
  void reduce_gradients();  // after the backward: every bucket's reduce-scatter started and waited on
  void gather_params();     // after the shard's update: every bucket's all-gather started
  // Before parameters [lo, hi) are read: waits for the all-gathers that write them.
  void wait_params(int64_t lo, int64_t hi);
  void wait_params() { wait_params(0, params_.numel()); }

 private:
  void start_reduce(size_t bucket);
  // Elements of [b.begin, b.end) in each rank's shard.
  std::vector<int64_t> counts(const Bucket& b) const;
  ParamStore& params_;
  Communicator& dp_;
  Zero1Options options_;
  int64_t begin_ = 0, size_ = 0;
  Tensor grad_, master_;
  Tensor wire_, wire_shard_;  // bf16 staging of the gradients (wire == bf16 only)
  std::vector<Bucket> buckets_;
  std::vector<Handle> reducing_, gathering_;  // per bucket; empty when not in flight
  size_t next_reduce_ = 0;                    // buckets [0, next_reduce_) have started their reduce-scatter
};

}  // namespace llamatron
