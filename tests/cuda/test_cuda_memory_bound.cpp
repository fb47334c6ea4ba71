// What the memory-bound native kernels (kernels/cuda/elementwise, activation, dropout, optim,
// concat, pool and batch_norm .cu) promise beyond the harness's cases: their float4 path and its
// scalar tail at every length mod 4 (0, 1, 3, 4, 5, 7, 8, 1023 and 4097 elements), tensors whose
// data starts 1, 2 or 3 floats past a 16-byte boundary (the scalar path), and one aligned tensor
// beside misaligned ones. Every layout must give the aligned result bit for bit (both paths compute
// each element by the same expression), that result must match the CPU kernel with the harness's
// tolerance for the slot, and nothing before a view's first element may be written. Also the
// multiply-high division against integer division, the kernel == stride pooling backward, the
// global-average-pool backward broadcast, and batch norm with more channels than one wave of
// blocks. Tolerances, {rtol, atol}: the slot files' (tests/cuda/slots/), each restated where used.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/cuda/backend_harness.h"
#include "tests/cuda/cuda_testing.h"

namespace engine {
namespace {

using testing::fast_randn;
using testing::kExact;
using testing::on_cuda;
using testing::poisoned_cuda;
using testing::Tol;

const KernelTable& cpu() { return kernel_table(Backend::Cpu); }
const KernelTable& native() { return kernel_table(Backend::Native); }

constexpr int64_t kLengths[] = {0, 1, 3, 4, 5, 7, 8, 1023, 4097};

// Where each tensor of a call starts, in floats past a 16-byte boundary: layout 0 puts every
// tensor at 0 (the float4 path), layouts 1-3 every tensor at 1, 2 or 3 (the scalar path), layout 4
// tensor k at k % 4 (the first aligned, the others not: one misaligned pointer must turn the
// vector path off).
constexpr int kLayouts = 5;
int64_t shift_of(int layout, size_t k) { return layout < 4 ? layout : static_cast<int64_t>(k % 4); }

// A CUDA tensor whose first element lies `shift` floats past the start of its allocation (the
// caching allocator hands out whole 256-byte aligned blocks); the floats before it are NaN and
// must stay so.
class Placed {
 public:
  Placed(const Shape& shape, int64_t shift, const Tensor& values)
      : base_(poisoned_cuda(shape_numel(shape) + shift)), shift_(shift) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = base_.impl().storage;
    impl->offset = base_.impl().offset + shift;
    impl->shape = shape;
    view_ = Tensor(std::move(impl));
    if (values.defined()) view_.copy_(values);
  }
  const Tensor& view() const { return view_; }
  void expect_prefix_untouched() const {
    const std::vector<float> v = base_.to_vector();
    for (int64_t i = 0; i < shift_; ++i)
      EXPECT_TRUE(std::isnan(v[static_cast<size_t>(i)]))
          << "the float " << shift_ - i << " before the tensor was written";
  }

 private:
  Tensor base_, view_;
  int64_t shift_;
};

// One tensor of a call: its shape and CPU contents before the call (undefined for an output,
// which starts as NaNs).
struct Arg {
  Shape shape;
  Tensor init;
};
using Call = std::function<void(std::vector<Tensor>&)>;
using Contents = std::vector<std::vector<float>>;

// Places every tensor of the call at `layout`, runs it and returns every tensor's contents after.
Contents run_at(int layout, const std::vector<Arg>& args, const Call& call) {
  std::vector<Placed> placed;
  std::vector<Tensor> views;
  for (size_t k = 0; k < args.size(); ++k) {
    placed.emplace_back(args[k].shape, shift_of(layout, k), args[k].init);
    views.push_back(placed.back().view());
  }
  call(views);
  Contents out;
  for (size_t k = 0; k < args.size(); ++k) {
    placed[k].expect_prefix_untouched();
    out.push_back(views[k].to_vector());
  }
  return out;
}

// Elements whose bits differ between two runs (a NaN left unwritten on one side counts).
int64_t bit_mismatches(const Contents& a, const Contents& b) {
  int64_t bad = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k].size() != b[k].size()) return std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < a[k].size(); ++i)
      bad += std::memcmp(&a[k][i], &b[k][i], sizeof(float)) != 0;
  }
  return bad;
}

// Runs the call at every layout: the aligned run matches `ref` (the CPU's contents of each tensor
// after the call; undefined for an input the call leaves alone) within tol, and every other
// layout gives the aligned run's contents bit for bit.
void expect_every_layout(const std::vector<Arg>& args, const Call& call,
                         const std::vector<Tensor>& ref, Tol tol) {
  const Contents aligned = run_at(0, args, call);
  for (size_t k = 0; k < ref.size(); ++k) {
    if (!ref[k].defined()) continue;
    SCOPED_TRACE("tensor " + std::to_string(k));
    EXPECT_MATCHES(Tensor::from_vector(args[k].shape, aligned[k]), ref[k], tol);
  }
  for (int layout = 1; layout < kLayouts; ++layout) {
    SCOPED_TRACE("layout " + std::to_string(layout));
    EXPECT_EQ(bit_mismatches(run_at(layout, args, call), aligned), 0);
  }
}

Tensor cpu_empty(const Shape& s) { return Tensor::empty(s); }

// ---- the multiply-high division ----

template <class U>
void expect_divides(U d, U n) {
  const cuda::FastDiv<U> f(d);
  ASSERT_EQ(f.div(n), n / d) << n << " / " << d;
  ASSERT_EQ(f.mod(n), n % d) << n << " % " << d;
}

// Divisors 1..300, powers of two and their neighbours up to the top of each index range;
// dividends 0..600, both sides of multiples of the divisor, and the largest allowed (2^31 - 1 for
// 32-bit, 2^63 - 1 for 64-bit), where the multiply-high's rounding error is largest.
template <class U>
void check_fast_div() {
  const U top = std::numeric_limits<U>::max() / 2;
  std::vector<U> divisors;
  for (U d = 1; d <= 300; ++d) divisors.push_back(d);
  for (int b = 2; b < static_cast<int>(8 * sizeof(U)) - 1; ++b)
    for (U d : {(U{1} << b) - 1, U{1} << b, (U{1} << b) + 1}) divisors.push_back(d);
  divisors.push_back(top);
  for (U d : divisors) {
    for (U n = 0; n <= 600; ++n) expect_divides(d, n);
    for (U k : {U{1}, U{2}, U{7}, top / d / 2, top / d})
      if (k > 0 && k <= top / d)
        for (U n : {k * d - 1, k * d, k * d + 1}) expect_divides(d, std::min(n, top));
    for (U n : {top, top - 1, top - d + 1}) expect_divides(d, n);
  }
}

TEST(CudaMemoryBound, FastDivisionMatchesIntegerDivision) {
  check_fast_div<uint32_t>();
  check_fast_div<uint64_t>();
}

// ---- element-wise ----

TEST(CudaMemoryBound, ElementwiseAtEveryLengthAndAlignment) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : kLengths) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Shape s{n};
    const Tensor a = fast_randn(s, 1 + n), b = fast_randn(s, 2 + n, 0.f, 3.f);
    {
      SCOPED_TRACE("fill, exact");
      Tensor ref = cpu_empty(s);
      cpu().fill(ref, 0.37f);
      expect_every_layout(
          {{s, {}}}, [](auto& t) { native().fill(t[0], 0.37f); }, {ref}, kExact);
    }
    {
      SCOPED_TRACE("add, {1e-6, 0}");
      Tensor ref = cpu_empty(s);
      cpu().add(a, b, ref);
      expect_every_layout(
          {{s, a}, {s, b}, {s, {}}}, [](auto& t) { native().add(t[0], t[1], t[2]); },
          {Tensor(), Tensor(), ref}, Tol{1e-6, 0});
    }
    {
      SCOPED_TRACE("add_inplace, {5e-7, 5e-7} (an FMA on one side)");
      Tensor ref = a.clone();
      cpu().add_inplace(ref, b, -0.75f);
      expect_every_layout(
          {{s, a}, {s, b}}, [](auto& t) { native().add_inplace(t[0], t[1], -0.75f); },
          {ref, Tensor()}, Tol{5e-7, 5e-7});
    }
    {
      SCOPED_TRACE("scale_inplace, {1e-6, 0}");
      Tensor ref = a.clone();
      cpu().scale_inplace(ref, 1.7f);
      expect_every_layout(
          {{s, a}}, [](auto& t) { native().scale_inplace(t[0], 1.7f); }, {ref}, Tol{1e-6, 0});
    }
    // sum_squares: 1e-9 relative (exact squares summed in double in another order).
    const double ref = cpu().sum_squares(b);
    for (int layout = 0; layout < 4; ++layout) {
      SCOPED_TRACE("sum_squares, layout " + std::to_string(layout));
      const Placed x(s, layout, b);
      const double ours = native().sum_squares(x.view());
      EXPECT_LE(std::abs(ours - ref), 1e-9 * ref) << "ours " << ours << ", cpu " << ref;
    }
  }
}

// relu and relu6 exact; sigmoid and tanh forward {2e-6, 0} (CUDA's expf/tanhf against the CPU's
// polynomials), backward {5e-7, 5e-7}. Inputs with stddev 4, so relu6 clamps at both ends.
TEST(CudaMemoryBound, ActivationsAtEveryLengthAndAlignment) {
  ENGINE_REQUIRE_CUDA();
  for (Activation act :
       {Activation::ReLU, Activation::ReLU6, Activation::Sigmoid, Activation::Tanh}) {
    const bool linear = act == Activation::ReLU || act == Activation::ReLU6;
    for (int64_t n : kLengths) {
      SCOPED_TRACE("activation " + std::to_string(static_cast<int>(act)) +
                   ", n = " + std::to_string(n));
      const Shape s{n};
      const Tensor x = fast_randn(s, 10 + n, 0.f, 4.f), gy = fast_randn(s, 11 + n);
      Tensor y = cpu_empty(s), gx = cpu_empty(s);
      cpu().activation_forward(act, x, y);
      cpu().activation_backward(act, y, gy, gx);
      expect_every_layout(
          {{s, x}, {s, {}}}, [act](auto& t) { native().activation_forward(act, t[0], t[1]); },
          {Tensor(), y}, linear ? kExact : Tol{2e-6, 0});
      expect_every_layout(
          {{s, y}, {s, gy}, {s, {}}},
          [act](auto& t) { native().activation_backward(act, t[0], t[1], t[2]); },
          {Tensor(), Tensor(), gx}, linear ? kExact : Tol{5e-7, 5e-7});
    }
  }
}

// Bit for bit with the CPU: offsets that are a multiple of 4 (the float4 path) and not.
TEST(CudaMemoryBound, DropoutAtEveryLengthAndAlignment) {
  ENGINE_REQUIRE_CUDA();
  for (int64_t n : kLengths) {
    const Shape s{n};
    const Tensor x = fast_randn(s, 20 + n);
    for (uint64_t offset : {uint64_t{0}, uint64_t{3}, uint64_t{1000}}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", offset = " + std::to_string(offset));
      Tensor ref = cpu_empty(s);
      cpu().dropout(x, ref, 0.3f, 77 + offset, offset);
      expect_every_layout(
          {{s, x}, {s, {}}},
          [offset](auto& t) { native().dropout(t[0], t[1], 0.3f, 77 + offset, offset); },
          {Tensor(), ref}, kExact);
    }
  }
}

// One step of each update from random state, every state tensor compared: {5e-7, 5e-7} (the same
// float operations, an FMA contracted on one side only).
TEST(CudaMemoryBound, OptimizersAtEveryLengthAndAlignment) {
  ENGINE_REQUIRE_CUDA();
  constexpr Tol kOptimTol{5e-7, 5e-7};
  for (int64_t n : kLengths) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const Shape s{n};
    const Tensor p = fast_randn(s, 30 + n), g = fast_randn(s, 31 + n), m = fast_randn(s, 32 + n);
    std::vector<float> pos = fast_randn(s, 33 + n).to_vector();
    for (float& e : pos) e = std::abs(e) + 0.1f;
    const Tensor v = Tensor::from_vector(s, pos);
    const Tensor nan = Tensor::full(s, std::nanf(""));
    for (bool first : {true, false}) {
      SCOPED_TRACE(first ? "sgd, first step (buffer not read)" : "sgd, nesterov");
      const SgdHyper h{0.1, 0.9, 0.0, 1e-2, !first, first};
      Tensor rp = p.clone(), rb = first ? nan.clone() : m.clone();
      cpu().sgd_update(rp, g, rb, h);
      expect_every_layout(
          {{s, p}, {s, g}, {s, first ? nan : m}},
          [h](auto& t) { native().sgd_update(t[0], t[1], t[2], h); }, {rp, Tensor(), rb},
          kOptimTol);
    }
    {
      SCOPED_TRACE("rmsprop, centered, momentum");
      const RmspropHyper h{0.01, 0.99, 1e-8, 1e-2, 0.9, true};
      // grad_avg in [-0.25, 0.25] and square_avg >= 0.1, so square_avg - grad_avg^2 > 0.
      std::vector<float> small = m.to_vector();
      for (float& e : small) e = std::max(-0.25f, std::min(0.25f, 0.1f * e));
      const Tensor ga = Tensor::from_vector(s, small);
      Tensor rp = p.clone(), rs = v.clone(), ra = ga.clone(), rb = g.clone();
      cpu().rmsprop_update(rp, g, rs, ra, rb, h);
      expect_every_layout(
          {{s, p}, {s, g}, {s, v}, {s, ga}, {s, g}},
          [h](auto& t) { native().rmsprop_update(t[0], t[1], t[2], t[3], t[4], h); },
          {rp, Tensor(), rs, ra, rb}, kOptimTol);
    }
    for (bool decoupled : {false, true}) {
      SCOPED_TRACE(decoupled ? "adamw" : "adam, weight decay");
      const AdamHyper h{1e-3, 0.9, 0.999, 1e-8, 1e-2, decoupled, 3};
      Tensor rp = p.clone(), rm = m.clone(), rv = v.clone();
      cpu().adam_update(rp, g, rm, rv, h);
      expect_every_layout(
          {{s, p}, {s, g}, {s, m}, {s, v}},
          [h](auto& t) { native().adam_update(t[0], t[1], t[2], t[3], h); }, {rp, Tensor(), rm, rv},
          kOptimTol);
    }
  }
}

// Exact. Runs whose length and pitches are multiples of 4 (the float4 path when aligned) and
// not, one part and several, along the first, a middle and the last dimension.
TEST(CudaMemoryBound, ConcatAtEveryAlignment) {
  ENGINE_REQUIRE_CUDA();
  struct Case {
    std::vector<Shape> parts;
    int64_t dim;
  };
  const Case cases[] = {
      {{{2, 4, 3}, {2, 8, 3}}, 1},
      {{{2, 2, 4}, {2, 1, 4}, {2, 3, 4}}, 1},
      {{{3, 5}, {3, 7}}, 1},
      {{{1023}, {4097}}, 0},
      {{{5, 4}, {3, 4}}, 0},
      {{{4, 3, 1}, {4, 3, 4}, {4, 3, 3}}, 2},
      {{{7, 8}}, 1},
  };
  uint64_t seed = 40;
  for (const Case& c : cases) {
    Shape out = c.parts[0];
    out[c.dim] = 0;
    for (const Shape& p : c.parts) out[c.dim] += p[c.dim];
    SCOPED_TRACE(shape_str(out) + " along " + std::to_string(c.dim));
    std::vector<Tensor> xs;
    std::vector<Arg> fwd_args, bwd_args;
    for (const Shape& p : c.parts) {
      xs.push_back(fast_randn(p, ++seed));
      fwd_args.push_back({p, xs.back()});
    }
    fwd_args.push_back({out, {}});
    Tensor y = cpu_empty(out);
    cpu().concat_forward(xs, c.dim, y);
    std::vector<Tensor> fwd_ref(c.parts.size());
    fwd_ref.push_back(y);
    const size_t parts = c.parts.size();
    const int64_t dim = c.dim;
    expect_every_layout(
        fwd_args,
        [parts, dim](auto& t) {
          const std::vector<Tensor> in(t.begin(), t.begin() + static_cast<ptrdiff_t>(parts));
          native().concat_forward(in, dim, t[parts]);
        },
        fwd_ref, kExact);

    const Tensor gy = fast_randn(out, ++seed);
    bwd_args.push_back({out, gy});
    std::vector<Tensor> gxs, bwd_ref = {Tensor()};
    for (const Shape& p : c.parts) {
      gxs.push_back(cpu_empty(p));
      bwd_args.push_back({p, {}});
    }
    cpu().concat_backward(gy, c.dim, gxs);
    bwd_ref.insert(bwd_ref.end(), gxs.begin(), gxs.end());
    expect_every_layout(
        bwd_args,
        [dim](auto& t) {
          std::vector<Tensor> out(t.begin() + 1, t.end());
          native().concat_backward(t[0], dim, out);
        },
        bwd_ref, kExact);
  }
}

// ---- pooling ----

// Exact against the CPU (the same division, added to zero): planes of 1, 3, 4, 15 and 49
// elements, so float4 accesses straddle planes and the area-multiple-of-4 case shares one.
TEST(CudaMemoryBound, GlobalAvgPoolBackwardBroadcasts) {
  ENGINE_REQUIRE_CUDA();
  const Shape shapes[] = {{3, 2, 1, 1}, {2, 3, 1, 3}, {2, 3, 2, 2}, {1, 5, 3, 5}, {2, 3, 7, 7}};
  uint64_t seed = 60;
  for (const Shape& in : shapes) {
    SCOPED_TRACE(shape_str(in));
    const Shape out = {in[0], in[1], 1, 1};
    const Tensor gy = fast_randn(out, ++seed, 0.5f);
    Tensor ref = cpu_empty(in);
    cpu().adaptive_avg_pool2d_backward(gy, ref);
    expect_every_layout(
        {{out, gy}, {in, {}}}, [](auto& t) { native().adaptive_avg_pool2d_backward(t[0], t[1]); },
        {Tensor(), ref}, kExact);
  }
}

Pool2dParams tiling(int64_t kh, int64_t kw, int64_t ph, int64_t pw, bool ceil_mode) {
  Pool2dParams p;
  p.kernel_h = p.stride_h = kh;
  p.kernel_w = p.stride_w = kw;
  p.pad_h = ph, p.pad_w = pw;
  p.ceil_mode = ceil_mode;
  return p;
}

// kernel == stride: each input in at most one window. Max and average (with and without the
// padding counted) backward exact against the CPU; rows and columns no window reaches (odd
// sizes), padding, partial ceil_mode windows and a rectangular window.
TEST(CudaMemoryBound, TiledPoolBackwardMatchesCpu) {
  ENGINE_REQUIRE_CUDA();
  const testing::PoolCase cases[] = {
      {{2, 3, 8, 8}, tiling(2, 2, 0, 0, false)},   {{1, 4, 9, 7}, tiling(2, 2, 0, 0, false)},
      {{2, 2, 10, 11}, tiling(3, 3, 1, 1, false)}, {{1, 3, 7, 10}, tiling(2, 3, 1, 1, true)},
      {{2, 2, 7, 9}, tiling(2, 2, 0, 0, true)},    {{1, 2, 5, 5}, tiling(1, 1, 0, 0, false)},
  };
  uint64_t seed = 80;
  for (testing::PoolCase c : cases) {
    const Shape out = testing::pool_out_shape(c);
    const Tensor x = fast_randn(c.x, ++seed), gy = fast_randn(out, ++seed);
    Tensor y = cpu_empty(out), idx = Tensor::empty(out, DType::I64), ref = cpu_empty(c.x);
    cpu().max_pool2d_forward(x, y, idx, c.p);
    cpu().max_pool2d_backward(gy, idx, ref, c.p);
    {
      SCOPED_TRACE("max, " + testing::pool_label(c));
      Tensor gx = poisoned_cuda(c.x);
      native().max_pool2d_backward(on_cuda(gy), on_cuda(idx), gx, c.p);
      EXPECT_MATCHES(gx, ref, kExact);
    }
    for (bool include_pad : {true, false}) {
      c.p.count_include_pad = include_pad;
      SCOPED_TRACE("average, " + testing::pool_label(c));
      cpu().avg_pool2d_backward(gy, ref, c.p);
      Tensor gx = poisoned_cuda(c.x);
      native().avg_pool2d_backward(on_cuda(gy), gx, c.p);
      EXPECT_MATCHES(gx, ref, kExact);
    }
  }
}

// ---- batch norm ----

// More channels than the device holds blocks at once (1100 against 8 x 132 in the emulator), so
// blocks loop over (channel, slice) items; S = 3 (scalar) and S = 4 (float4). The slot's
// tolerances: y and gx {5e-7, 5e-7}, statistics and weight gradients {0, 1e-6}.
TEST(CudaMemoryBound, BatchNormWithMoreChannelsThanOneWave) {
  ENGINE_REQUIRE_CUDA();
  for (const Shape& shape : {Shape{2, 1100, 3}, Shape{2, 1100, 2, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t c = shape[1];
    const Tensor x = fast_randn(shape, 90, 3.f, 2.f), gy = fast_randn(shape, 91);
    const Tensor w = fast_randn({c}, 92, 1.f, 0.2f), b = fast_randn({c}, 93);
    Tensor y = cpu_empty(shape), mean = cpu_empty({c}), invstd = cpu_empty({c});
    Tensor none;
    cpu().batch_norm_forward_train(x, w, b, y, mean, invstd, none, none, 0.1f, 1e-5f);
    Tensor gx = cpu_empty(shape), gw = cpu_empty({c}), gb = cpu_empty({c});
    cpu().batch_norm_backward(gy, x, w, mean, invstd, true, gx, gw, gb);

    Tensor yd = poisoned_cuda(shape), md = poisoned_cuda({c}), id = poisoned_cuda({c});
    native().batch_norm_forward_train(on_cuda(x), on_cuda(w), on_cuda(b), yd, md, id, none, none,
                                      0.1f, 1e-5f);
    EXPECT_MATCHES(yd, y, (Tol{5e-7, 5e-7}));
    EXPECT_MATCHES(md, mean, (Tol{0, 1e-6}));
    EXPECT_MATCHES(id, invstd, (Tol{0, 1e-6}));
    Tensor gxd = poisoned_cuda(shape), gwd = poisoned_cuda({c}), gbd = poisoned_cuda({c});
    native().batch_norm_backward(on_cuda(gy), on_cuda(x), on_cuda(w), on_cuda(mean),
                                 on_cuda(invstd), true, gxd, gwd, gbd);
    EXPECT_MATCHES(gxd, gx, (Tol{5e-7, 5e-7}));
    EXPECT_MATCHES(gwd, gw, (Tol{0, 1e-6}));
    EXPECT_MATCHES(gbd, gb, (Tol{0, 1e-6}));
  }
}

}  // namespace
}  // namespace engine
