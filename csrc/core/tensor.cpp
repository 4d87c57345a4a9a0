#include "llamatron/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "llamatron/backend.h"
#include "llamatron/errors.h"
#include "llamatron/memory.h"

namespace llamatron {

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "fp32";
    case DType::BF16: return "bf16";
    case DType::I32: return "int32";
  }
  return "?";
}

std::string device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

namespace {
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
  Device device() const override { return Device::CPU; }
};
}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator a;
  return a;
}

namespace {
DeviceBackend* g_cuda_backend = nullptr;
}

void register_backend(Device device, DeviceBackend* backend) {
  LT_CHECK(device == Device::CUDA, "only the CUDA device has a pluggable backend");
  g_cuda_backend = backend;
}

DeviceBackend& backend_for(Device device) {
  if (device != Device::CUDA || !g_cuda_backend)
    throw Error("no backend for device " + device_name(device) + ": this process did not set up the CUDA backend");
  return *g_cuda_backend;
}

// Owned memory, counted in the memory accounting under the category in scope when it was made.
struct Tensor::Storage {
  Allocator* alloc;
  void* ptr;
  size_t bytes;
  MemCategory category;
  Storage(Allocator* a, size_t n) : alloc(a), ptr(a->allocate(n)), bytes(n), category(current_mem_category()) {
    count_allocation(alloc->device(), category, static_cast<int64_t>(bytes));
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    alloc->deallocate(ptr, bytes);
    count_allocation(alloc->device(), category, -static_cast<int64_t>(bytes));
  }
};

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ',';
    r += std::to_string(s[i]);
  }
  return r + "]";
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) LT_CHECK(d >= 0, "negative dimension in " + shape_str(shape));
  Tensor t;
  size_t bytes = shape_numel(shape) * dtype_size(dtype);
  t.storage_ = std::make_shared<Storage>(device == Device::CPU ? &cpu_allocator() : &backend_for(device).allocator(), bytes);
  t.data_ = t.storage_->ptr;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::view(int64_t offset, const Shape& shape) const {
  LT_CHECK(offset >= 0 && offset + shape_numel(shape) <= numel(),
           "view " + shape_str(shape) + "+" + std::to_string(offset) + " outside " + shape_str(shape_));
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + offset * dtype_size(dtype_);
  t.shape_ = shape;
  return t;
}

void Tensor::zero_() {
  if (device_ == Device::CPU) std::memset(data_, 0, nbytes());
  else backend_for(device_).zero(data_, nbytes());
}

void Tensor::copy_from(const Tensor& src) {
  LT_CHECK(src.numel() == numel(), "copy " + shape_str(src.shape()) + " into " + shape_str(shape_));
  if (src.device() == device_ && device_ != Device::CPU && src.dtype() != dtype_) {
    backend_for(device_).cast(src, *this);  // fp32 <-> bf16 on the device
  } else if (src.device() != Device::CPU || device_ != Device::CPU) {
    LT_CHECK(src.dtype() == dtype_, "copies between the host and a device keep the dtype");
    backend_for(src.device() != Device::CPU ? src.device() : device_).copy(data_, device_, src.raw(), src.device(), nbytes());
  } else if (src.dtype() == dtype_) {
    std::memcpy(data_, src.raw(), nbytes());
  } else if (src.dtype() == DType::F32 && dtype_ == DType::BF16) {
    const float* s = src.data<float>();
    bf16* d = data<bf16>();
    for (int64_t i = 0; i < numel(); ++i) d[i] = bf16(s[i]);
  } else if (src.dtype() == DType::BF16 && dtype_ == DType::F32) {
    const bf16* s = src.data<bf16>();
    float* d = data<float>();
    for (int64_t i = 0; i < numel(); ++i) d[i] = float(s[i]);
  } else {
    LT_CHECK(false, "no conversion " + dtype_name(src.dtype()) + " -> " + dtype_name(dtype_));
  }
}

void Tensor::check_type(DType want) const {
  LT_CHECK(want == dtype_, "tensor is " + dtype_name(dtype_) + ", accessed as " + dtype_name(want));
}

void internal_error(const char* cond, const char* file, int line, const std::string& msg) {
  throw std::logic_error(std::string("internal error: ") + msg + " (" + cond + " at " + file + ":" +
                         std::to_string(line) + ")");
}

}  // namespace llamatron
