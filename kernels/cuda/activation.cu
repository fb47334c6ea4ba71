// Native CUDA activations (relu, relu6, sigmoid, tanh) and their derivatives, all computed from the
// saved output y as on the CPU, so backward needs no copy of the input. Each is a Map op run by
// map_kernel (cuda_util.h: grid sized from the occupancy API, four independent float4 loads per
// input per thread per pass when the pointers are 16-byte aligned, a scalar tail, a scalar path
// when not); the activation is a template parameter, so each kernel is one fused loop with no
// switch inside. sigmoid and tanh use CUDA's expf/tanhf (max 2 ulp; no --use_fast_math) where the
// CPU uses Cephes polynomials: they agree to a few 1e-7 relative.
// Bytes moved per element, as bench_cuda_ops counts them: forward 8 (read x, write y), backward
// 12 (read y, gy, write gx), at most ~4 FLOPs per element. For a [64, 64, 112, 112] activation
// (51.4M floats) forward moves 411 MB, backward 617 MB: an 86 / 128 us ceiling at the H200's
// 4.8 TB/s. Fraction of the copy bandwidth reached: not yet measured on a GPU.
// act_forward / act_backward are in cuda_util.h, shared with conv2d's epilogue.
#include "kernels/cuda/cuda_util.h"

namespace engine::cuda {
namespace {

template <Activation A>
struct Forward {
  __device__ float operator()(float x) const { return act_forward<A>(x); }
};

template <Activation A>
struct Backward {
  __device__ float operator()(float y, float gy) const { return act_backward<A>(y, gy); }
};

template <class Op>
void launch(const Op& op, int64_t n) {
  const bool vector = op.aligned();
  map_kernel<Op><<<map_grid<Op>(n, vector), kBlock, 0, stream()>>>(op, n, vector);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}

template <Activation A>
void launch_forward(const Tensor& x, Tensor& y, int64_t n) {
  launch(Map<1, false, Forward<A>>{{fptr(x)}, fptr(y), {}}, n);
}

template <Activation A>
void launch_backward(const Tensor& y, const Tensor& gy, Tensor& gx, int64_t n) {
  launch(Map<2, false, Backward<A>>{{fptr(y), fptr(gy)}, fptr(gx), {}}, n);
}

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  switch (a) {
    case Activation::ReLU:
      return launch_forward<Activation::ReLU>(x, y, n);
    case Activation::ReLU6:
      return launch_forward<Activation::ReLU6>(x, y, n);
    case Activation::Sigmoid:
      return launch_forward<Activation::Sigmoid>(x, y, n);
    case Activation::Tanh:
      return launch_forward<Activation::Tanh>(x, y, n);
  }
}

void activation_backward(Activation a, const Tensor& y, const Tensor& gy, Tensor& gx) {
  const int64_t n = y.numel();
  if (n == 0) return;
  switch (a) {
    case Activation::ReLU:
      return launch_backward<Activation::ReLU>(y, gy, gx, n);
    case Activation::ReLU6:
      return launch_backward<Activation::ReLU6>(y, gy, gx, n);
    case Activation::Sigmoid:
      return launch_backward<Activation::Sigmoid>(y, gy, gx, n);
    case Activation::Tanh:
      return launch_backward<Activation::Tanh>(y, gy, gx, n);
  }
}

}  // namespace

void register_activation(KernelTable& t) {
  t.activation_forward = activation_forward;
  t.activation_backward = activation_backward;
}

}  // namespace engine::cuda
