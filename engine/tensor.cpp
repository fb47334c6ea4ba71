// Tensor factories, host access, copies and views.
#include "engine/tensor.h"

#include <cstring>

#include "engine/autograd.h"
#include "engine/op_table.h"
#include "engine/random.h"

namespace engine {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::F16:
      return "f16";
    case DType::BF16:
      return "bf16";
    case DType::F64:
      return "f64";
    case DType::I64:
      return "i64";
    case DType::U8:
      return "u8";
  }
  return "?";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    ENGINE_CHECK(d >= 0, "Tensor::empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  return Tensor(std::move(impl));
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  Allocator* pinned = pinned_allocator();
  if (!pinned) return empty(shape, dtype);
  for (int64_t d : shape)
    ENGINE_CHECK(d >= 0, "Tensor::empty_pinned: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->storage =
      std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), Device::cpu(), pinned);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::F32, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
  ENGINE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
               "Tensor::from_vector: ", values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32, device);
  copy_bytes(t.raw_data(), device, values.data(), Device::cpu(), t.nbytes());
  return t;
}

Tensor Tensor::from_vector_i64(const Shape& shape, const std::vector<int64_t>& values,
                               Device device) {
  ENGINE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
               "Tensor::from_vector_i64: ", values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I64, device);
  copy_bytes(t.raw_data(), device, values.data(), Device::cpu(), t.nbytes());
  return t;
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, float mean, float stddev) {
  Tensor t = empty(shape);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  gen.fill_normal(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] = mean + stddev * p[i];
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, float lo, float hi) {
  Tensor t = empty(shape);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  gen.fill_uniform(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] = lo + (hi - lo) * p[i];
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t r = dim();
  ENGINE_CHECK(d >= -r && d < r, "size(", d, "): tensor of shape ", shape_str(shape()), " has ", r,
               " dimensions");
  return shape()[d < 0 ? d + r : d];
}

void* Tensor::raw_data() const {
  const TensorImpl& t = impl();
  if (!t.storage || !t.storage->data()) return nullptr;
  return static_cast<char*>(t.storage->data()) + t.offset * dtype_size(t.dtype);
}

float Tensor::item() const {
  ENGINE_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " has ", numel(),
               " elements, not 1");
  return to_vector()[0];
}

std::vector<float> Tensor::to_vector() const {
  ENGINE_CHECK(dtype() == DType::F32, "to_vector(): tensor is ", dtype_name(dtype()), ", not f32");
  std::vector<float> v(numel());
  copy_bytes(v.data(), Device::cpu(), raw_data(), device(), nbytes());
  return v;
}

std::vector<int64_t> Tensor::to_vector_i64() const {
  ENGINE_CHECK(dtype() == DType::I64, "to_vector_i64(): tensor is ", dtype_name(dtype()));
  std::vector<int64_t> v(numel());
  copy_bytes(v.data(), Device::cpu(), raw_data(), device(), nbytes());
  return v;
}

Tensor Tensor::to(Device d) const {
  Tensor t = empty(shape(), dtype(), d);
  copy_bytes(t.raw_data(), d, raw_data(), device(), nbytes());
  return t;
}

Tensor Tensor::clone() const { return to(device()); }

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = this->impl().storage;
  impl->offset = this->impl().offset;
  impl->shape = shape();
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

void Tensor::copy_(const Tensor& src) {
  ENGINE_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy_: source ", src.str(),
               " does not match destination ", str());
  copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
}

void Tensor::fill_(float value) {
  ENGINE_CHECK(dtype() == DType::F32, "fill_: tensor is ", dtype_name(dtype()), ", not f32");
  ENGINE_KERNEL(device(), fill)(*this, value);
}

void Tensor::zero_() { zero_bytes(raw_data(), device(), nbytes()); }

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      ENGINE_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      ENGINE_CHECK(s[i] >= 0, "reshape: negative dimension in ", shape_str(new_shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    ENGINE_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", shape_str(shape()),
                 " into ", shape_str(new_shape));
    s[infer] = numel() / known;
  }
  ENGINE_CHECK(shape_numel(s) == numel(), "reshape: cannot reshape ", shape_str(shape()), " (",
               numel(), " elements) into ", shape_str(new_shape));
  Tensor out = detach();
  out.impl().shape = s;
  if (autograd::needs_record({this})) {
    Shape in_shape = shape();
    autograd::record("reshape", out, {this}, [in_shape](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g.reshape(in_shape)};
    });
  }
  return out;
}

Tensor Tensor::flatten(int64_t start_dim) const {
  int64_t r = dim();
  ENGINE_CHECK(start_dim >= 0 && start_dim < std::max<int64_t>(r, 1), "flatten: start_dim ",
               start_dim, " out of range for shape ", shape_str(shape()));
  Shape s(shape().begin(), shape().begin() + start_dim);
  s.push_back(-1);
  if (numel() == 0) {
    int64_t rest = 1;
    for (int64_t i = start_dim; i < r; ++i) rest *= shape()[i];
    s.back() = rest;
  }
  return reshape(s);
}

Tensor& Tensor::set_requires_grad(bool r) {
  ENGINE_CHECK(!r || dtype() == DType::F32, "set_requires_grad: only f32 tensors take gradients, ",
               "this one is ", dtype_name(dtype()));
  ENGINE_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad");
  impl().requires_grad = r;
  if (!r) impl().grad_accumulator.reset();
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    ENGINE_CHECK(g.shape() == shape(), "set_grad: gradient ", shape_str(g.shape()),
                 " does not match tensor ", shape_str(shape()));
  impl().grad = g.impl_ptr();
}

void Tensor::zero_grad() { impl().grad.reset(); }

void Tensor::backward(const Tensor& grad_output) const {
  autograd::run_backward(*this, grad_output);
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return "Tensor" + shape_str(shape()) + " " + dtype_name(dtype()) + " " + device().str();
}

}  // namespace engine
