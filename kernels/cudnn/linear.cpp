// cuBLAS linear layer: y = x w^T + b, gx = gy w, gw = gy^T x, gb = sum over rows of gy.
// Three SGEMMs (cublasSgemm_64), a rank-1 update for the bias (cublasSger_64: y += b 1^T) and a
// GEMV for its gradient (cublasSgemv_64: gb = gy^T 1), with a cached vector of ones.
//
// Row-major through a column-major library: a row-major [r, c] matrix is, byte for byte, the
// column-major [c, r] matrix of its transpose. So each row-major product C = A B is computed as
// the column-major C^T = B^T A^T, with the operands swapped and no data moved:
//   y [N, out]   : y^T  = w  x^T     -> gemm(T, N, m = out, n = N,   k = in)
//   gx [N, in]   : gx^T = w^T gy^T   -> gemm(N, N, m = in,  n = N,   k = out)
//   gw [out, in] : gw^T = x^T gy     -> gemm(N, T, m = in,  n = out, k = N)
// and the bias y^T += b 1^T, gb = gy^T (as column-major [out, N]) times a vector of N ones.
//
// Math: CUBLAS_DEFAULT_MATH (FP32 FMA; no TF32 for SGEMM since cuBLAS 11) unless
// set_cudnn_allow_tf32(true) selects CUBLAS_TF32_TENSOR_OP_MATH, set on the handle per call.
//
// Compute-bound for large layers: [256, 2048] x [2048, 1000] is 1.05 GFLOP per pass, 16 us at the
// H200's 67 TFLOP/s FP32 (non-tensor) peak; the study's small heads are launch-bound. Fraction of
// the ceiling reached: not yet measured on a GPU.
#include "kernels/cudnn/cudnn_util.h"

namespace engine::cudnn {
namespace {

using cuda::fptr;

const float kOne = 1.f, kZero = 0.f;

cublasHandle_t blas() {
  cublasHandle_t h = blas_handle();
  ENGINE_CUBLAS_CHECK(
      cublasSetMathMode(h, cudnn_allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

void zero(Tensor& t) {
  if (t.defined() && t.numel() > 0) t.zero_();  // cudaMemsetAsync on stream()
}

// Column-major C[m, n] = op(A) op(B) over an inner dimension k, overwriting C. With k = 0 the
// product is an empty sum, written as zeros here rather than left to the library's conventions.
void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
          const float* a, int64_t lda, const float* b, int64_t ldb, Tensor& c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return zero(c);
  ENGINE_CUBLAS_CHECK(
      cublasSgemm_64(blas(), ta, tb, m, n, k, &kOne, a, lda, b, ldb, &kZero, fptr(c), ldc));
}

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  if (y.numel() == 0) return;
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, fptr(w), in, fptr(x), in, y, out);
  if (b.defined())
    ENGINE_CUBLAS_CHECK(cublasSger_64(blas(), out, n, &kOne, fptr(b), 1, ones(n), 1, fptr(y), out));
}

void linear_backward_data(const Tensor& gy, const Tensor& w, Tensor& gx) {
  const int64_t n = gy.size(0), out = w.size(0), in = w.size(1);
  gemm(CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, fptr(w), in, fptr(gy), out, gx, in);
}

void linear_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Tensor& gb) {
  const int64_t n = gy.size(0), out = gy.size(1), in = x.size(1);
  if (gw.defined()) gemm(CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, fptr(x), in, fptr(gy), out, gw, in);
  if (gb.defined() && out > 0) {
    if (n == 0) return zero(gb);
    ENGINE_CUBLAS_CHECK(cublasSgemv_64(blas(), CUBLAS_OP_N, out, n, &kOne, fptr(gy), out, ones(n),
                                       1, &kZero, fptr(gb), 1));
  }
}

}  // namespace

void register_linear(KernelTable& t) {
  t.linear_forward = linear_forward;
  t.linear_backward_data = linear_backward_data;
  t.linear_backward_weight = linear_backward_weight;
}

}  // namespace engine::cudnn
