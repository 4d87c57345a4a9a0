// Tensor: a typed, shaped window onto device memory, either owning its storage or a view of
// someone else's (flat parameter/gradient buffers hand out views; see model/params).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "llamatron/dtype.h"

namespace llamatron {

enum class Device : uint8_t { CPU, CUDA };
std::string device_name(Device d);

// Where device memory comes from. The CPU allocator returns 64-byte-aligned blocks (one cache
// line, one AVX-512 vector); the CUDA backend (#4) adds a caching pool behind the same interface.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;
};
Allocator& cpu_allocator();

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::CPU);
  // Non-owning view of memory that outlives the tensor.
  static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device = Device::CPU);

  // A view of `shape` starting `offset` elements into this tensor's memory; shares ownership.
  Tensor view(int64_t offset, const Shape& shape) const;
  Tensor reshape(const Shape& shape) const { return view(0, shape); }

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return numel() * dtype_size(dtype_); }
  bool owns_storage() const { return storage_ != nullptr; }

  void* raw() const { return data_; }
  template <typename T> T* data() const {
    check_type(dtype_of<T>());
    return static_cast<T*>(data_);
  }
  void zero_();
  void copy_from(const Tensor& src);  // same dtype and numel, or fp32 <-> bf16 conversion

 private:
  struct Storage;
  void check_type(DType want) const;
  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

}  // namespace llamatron
