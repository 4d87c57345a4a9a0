#include "llamatron/params.h"

#include <algorithm>

#include "llamatron/backend.h"
#include "llamatron/errors.h"
#include "llamatron/memory.h"
#include "ops/cpu/cpu_ops.h"

namespace llamatron {

// Every view starts on a 64-element boundary: 128-byte (bf16) / 256-byte (fp32) aligned rows for
// vectorized kernels, and shard boundaries that never split a cache line.
constexpr int64_t kAlign = 64;

int64_t ParamStore::padded_numel(std::vector<ParamSpec>& specs, int64_t shards) {
  int64_t n = 0;
  for (ParamSpec& s : specs) {
    s.offset = n;
    n += s.packed_with_next ? s.numel() : (s.numel() + kAlign - 1) / kAlign * kAlign;
  }
  return (n + shards * kAlign - 1) / (shards * kAlign) * (shards * kAlign);
}

ParamStore::ParamStore(std::vector<ParamSpec> specs, DType dtype, Device device, int64_t shards)
    : specs_(std::move(specs)), dtype_(dtype), device_(device) {
  LT_CHECK(dtype == DType::F32 || dtype == DType::BF16, "parameters are fp32 or bf16");
  numel_ = padded_numel(specs_, shards);
  for (size_t i = 0; i < specs_.size(); ++i)
    LT_CHECK(index_.emplace(specs_[i].name, i).second, "duplicate parameter " + specs_[i].name);
  // In fp32 mode the master is the parameters themselves: weights. In bf16 it is optimizer state.
  master_ = counted_as(dtype == DType::F32 ? MemCategory::Weights : MemCategory::Optimizer,
                       [&] { return Tensor::zeros({numel_}, DType::F32, device); });
  params_ = dtype == DType::F32 ? master_ : counted_as(MemCategory::Weights, [&] { return Tensor::zeros({numel_}, DType::BF16, device); });
  grads_ = counted_as(MemCategory::Grads, [&] { return Tensor::zeros({numel_}, DType::F32, device); });
}

void slice_global(const ParamSpec& s, const float* global, float* local) {
  if (s.split_dim < 0) return void(std::copy_n(global, s.numel(), local));
  const int64_t R = s.global_shape[0], Cg = s.global_shape[1], r = s.shape[0], c = s.shape[1];
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) {
      const int64_t gi = s.split_dim == 0 ? s.split_offset + i : i, gj = s.split_dim == 1 ? s.split_offset + j : j;
      local[i * c + j] = gi < R ? global[gi * Cg + gj] : 0.f;
    }
}

const ParamSpec& ParamStore::spec(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("no parameter named '" + name + "'");
  return specs_[it->second];
}

Tensor ParamStore::span(const Tensor& flat, const std::string& first, const Shape& shape) const {
  size_t i = index_.at(first);
  int64_t covered = specs_[i].numel();
  while (covered < shape_numel(shape)) {
    LT_CHECK(specs_[i].packed_with_next && i + 1 < specs_.size(), "span over unpacked parameters from " + first);
    covered += specs_[++i].numel();
  }
  LT_CHECK(covered == shape_numel(shape), "span " + shape_str(shape) + " does not end on a parameter boundary");
  return flat.view(specs_[index_.at(first)].offset, shape);
}

void ParamStore::release_master() {
  if (!master_is_params()) master_ = Tensor();
}

Tensor ParamStore::view(const Tensor& flat, const std::string& name) const {
  LT_CHECK(flat.defined(), "the full master weights were released to a sharded optimizer");
  const ParamSpec& s = spec(name);
  return flat.view(s.offset, s.shape);
}

void ParamStore::sync_params_from_master() {
  if (master_is_params()) return;
  if (device_ != Device::CPU) return backend_for(device_).cast(master_, params_);
  cpu::convert<bf16>(master_.data<float>(), params_.data<bf16>(), numel_);
}

}  // namespace llamatron
