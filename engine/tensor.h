// Tensor: a shared handle to a contiguous, row-major (NCHW) block of one dtype on one device,
// plus the autograd fields (requires_grad, grad, grad_fn). Copying a Tensor copies the handle,
// not the data. Views (reshape, flatten, detach) share the Storage and differ only in shape.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/storage.h"

namespace engine {

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);

struct Node;
class Generator;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;           // set on outputs of recorded ops (non-leaf)
  std::shared_ptr<Node> grad_accumulator;  // leaves that require grad, created on first use
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. New memory is uninitialised for empty(), as in every framework.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  // CPU tensor in pinned host memory when a CUDA runtime provides it, else ordinary CPU memory.
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device device = Device::cpu());
  static Tensor from_vector_i64(const Shape& shape, const std::vector<int64_t>& values,
                                Device device = Device::cpu());
  static Tensor randn(const Shape& shape, Generator& gen, float mean = 0.f, float stddev = 1.f);
  static Tensor rand(const Shape& shape, Generator& gen, float lo = 0.f, float hi = 1.f);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage ? impl().storage->device() : Device::cpu(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  void* raw_data() const;
  template <typename T>
  T* data() const {
    ENGINE_CHECK(defined(), "data(): undefined tensor");
    ENGINE_CHECK(dtype() == dtype_of<T>(), "data<", dtype_name(dtype_of<T>()), ">() on a ",
                 dtype_name(dtype()), " tensor of shape ", shape_str(shape()));
    return static_cast<T*>(raw_data());
  }

  // Host-side reads (copy from the device when needed).
  float item() const;
  std::vector<float> to_vector() const;
  std::vector<int64_t> to_vector_i64() const;

  Tensor to(Device device) const;        // copy to another device (a new leaf without grad)
  Tensor clone() const;                   // deep copy, no autograd history
  Tensor detach() const;                  // shares storage, no autograd history
  void copy_(const Tensor& src);          // in-place copy of same shape and dtype, any devices
  void fill_(float value);
  void zero_();

  // Views; recorded by autograd so gradients flow through them.
  Tensor reshape(const Shape& shape) const;  // one dimension may be -1
  Tensor flatten(int64_t start_dim = 1) const;

  // Autograd.
  bool requires_grad() const { return defined() && impl().requires_grad; }
  Tensor& set_requires_grad(bool r);
  bool is_leaf() const { return !impl().grad_fn; }
  Tensor grad() const;
  void set_grad(const Tensor& g);
  void zero_grad();  // drops the gradient (set to none), as PyTorch's zero_grad(set_to_none=True)
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // Reverse-mode pass from this tensor. With no argument the tensor must hold one element and
  // the seed gradient is 1.
  void backward(const Tensor& grad_output = Tensor()) const;

  TensorImpl& impl() const {
    ENGINE_CHECK(impl_, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  std::string str() const;  // "Tensor[2, 3] f32 cpu"

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace engine
