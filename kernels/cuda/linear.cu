// Native CUDA linear layer on the implicit-GEMM core of conv2d (kernels/cuda/conv2d_gemm.cuh): the
// three products are its C[m, n] = sum_k A[k, m] B[k, n] with plain strided operands, arranged so
// that m runs along the contiguous index of the result (the epilogue's neighbouring threads store
// neighbouring addresses):
//   forward          y[n, o]  = sum_i w[o, i] x[n, i] + b[o]   m = o, n = batch row, k = i
//   backward data    gx[n, i] = sum_o w[o, i] gy[n, o]         m = i, n = batch row, k = o
//   backward weight  gw[o, i] = sum_n x[n, i] gy[n, o]         m = i, n = o,         k = n
// and gb = the column sums of gy, one thread per column summing rows in order (the CPU's order,
// so gb matches it bit for bit).
// The core's planner picks the block tile (128x128 with an 8x8 micro-tile per thread for large
// products, thinner or smaller tiles for thin ones) and splits K (any count) when the tiles alone
// fill too few of the GPU's whole waves: each split writes its partial product to scratch, and a
// second kernel sums the partials in a fixed order and adds the bias: deterministic, no atomics.
// Without a split the bias is added in the GEMM's epilogue. Plain FP32 FMA (no TF32).
// fc1 forward, [64, 65536] x [65536, 256]: 2.1 GFLOP and 84 MB read (w is 67 MB), a 32 us compute
// ceiling at the H200's 67 TFLOP/s FP32 (17 us for the memory). Speed has not been measured on a
// GPU. Registers (nvcc 13.0 -Xptxas -v, sm_90): the GEMM's instantiations 71-128, no spills.
#include <algorithm>

#include "kernels/cuda/conv2d_gemm.cuh"

namespace engine::cuda {
namespace {

using gemm::ceil_div;

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  kernel<<<grid, block, 0, stream()>>>(args...);
  ENGINE_CUDA_CHECK(cudaGetLastError());
}
constexpr auto kLaunch = [](auto... a) { launch(a...); };

// A GEMM operand over a plain matrix: element (k, r) at p[k*ld + r] when kRowContig, else at
// p[r*ld + k]; zero for r >= rows or k >= depth.
template <bool kRowContig>
struct Matrix {
  static constexpr bool kRowContiguous = kRowContig;
  const float* p;
  int rows, depth;
  int64_t ld;
  struct Row {
    int64_t offset;  // -1 past the last row
  };
  struct Col {
    int64_t offset;  // -1 past the depth
  };
  __device__ void bind(int) {}
  __device__ Row row(int r) const { return {r < rows ? (kRowContig ? r : r * ld) : -1}; }
  __device__ Col col(int k) const { return {k < depth ? (kRowContig ? k * ld : k) : -1}; }
  __device__ float load(const Row& r, const Col& c) const {
    return r.offset >= 0 && c.offset >= 0 ? p[r.offset + c.offset] : 0.f;
  }
};

// C[m, n] stored at c[n*ld + m] (+ bias[m]); split s writes its partial to c + s*slice.
struct Output {
  float* c;
  const float* bias;  // may be null
  int64_t ld, slice;
  struct Row {
    int m;
  };
  __device__ void bind(int, int split) { c += split * slice; }
  __device__ Row row(int m) const { return {m}; }
  __device__ void store(const Row& r, int n, float v) const {
    c[n * ld + r.m] = bias ? v + bias[r.m] : v;
  }
};

// c[i] = sum over the splits, in order, of partial[z][i] (+ bias of i's column), c an m x n
// row-major matrix.
__global__ void sum_splits_kernel(const float* __restrict__ partial, int splits, int64_t m,
                                  int64_t n, const float* __restrict__ bias,
                                  float* __restrict__ c) {
  const int64_t mn = m * n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < mn;
       i += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.f;
    for (int z = 0; z < splits; ++z) s += partial[z * mn + i];
    c[i] = bias ? s + bias[i % n] : s;
  }
}

// out[j] = sum_r g[r, j], rows in order. Threads run along j, so each row's read is coalesced.
__global__ void column_sums_kernel(const float* __restrict__ g, int64_t rows, int64_t cols,
                                   float* __restrict__ out) {
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < cols;
       j += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.f;
    for (int64_t r = 0; r < rows; ++r) s += g[r * cols + j];
    out[j] = s;
  }
}

// c[j*m + i] = sum_k A[k, i] B[k, j] (+ bias[i]) for i < m, j < n.
template <class A, class B>
void gemm_into(const A& a, const B& b, int64_t m, int64_t n, int64_t k, const float* bias,
               float* c) {
  if (m == 0 || n == 0) return;
  ENGINE_CHECK(std::max({m, n, k}) < (int64_t{1} << 31), "linear (native CUDA): product ", m, " x ",
               n, " x ", k, " exceeds the GEMM's int extents");
  const gemm::GemmPlan plan = gemm::plan_gemm(m, n, k, 1, gemm::occupancy<A, B, Output>());
  if (plan.splits == 1) {
    gemm::run_gemm(kLaunch, plan, a, b, Output{c, bias, m, 0}, m, n, k, 1);
    return;
  }
  // Freed at scope exit while the kernels may still be queued: safe, as every user of the
  // allocator runs on the same stream.
  Scratch partial(sizeof(float) * static_cast<size_t>(plan.splits * m * n));
  gemm::run_gemm(kLaunch, plan, a, b, Output{partial.as<float>(), nullptr, m, m * n}, m, n, k, 1);
  launch(sum_splits_kernel, dim3(grid_for(m * n)), dim3(kBlock), partial.as<float>(), plan.splits,
         n, m, bias, c);
}

int to_int(int64_t v) { return static_cast<int>(v); }

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  gemm_into(Matrix<false>{fptr(w), to_int(out), to_int(in), in},
            Matrix<false>{fptr(x), to_int(rows), to_int(in), in}, out, rows, in, fptr(b), fptr(y));
}

void linear_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx) {
  const int64_t rows = gy.size(0), out = w.size(0), in = w.size(1);
  gemm_into(Matrix<true>{fptr(w), to_int(in), to_int(out), in},
            Matrix<false>{fptr(gy), to_int(rows), to_int(out), out}, in, rows, out, nullptr,
            fptr(gx));
}

void linear_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb) {
  const int64_t rows = gy.size(0), out = gy.size(1), in = x.size(1);
  if (gw.defined())
    gemm_into(Matrix<true>{fptr(x), to_int(in), to_int(rows), in},
              Matrix<true>{fptr(gy), to_int(out), to_int(rows), out}, in, out, rows, nullptr,
              fptr(gw));
  if (gb.defined() && out > 0)
    launch(column_sums_kernel, dim3(grid_for(out)), dim3(kBlock), fptr(gy), rows, out, fptr(gb));
}

}  // namespace

void register_linear(KernelTable& t) {
  t.linear_forward = linear_forward;
  t.linear_backward_data = linear_backward_data;
  t.linear_backward_weight = linear_backward_weight;
}

}  // namespace engine::cuda
