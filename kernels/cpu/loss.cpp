// CPU softmax cross-entropy with class weights and label smoothing, as PyTorch 1.13's
// F.cross_entropy(reduction="mean"). With w the class weights (1 when absent), e the smoothing,
// W = sum_n w[t_n] and lp = log_softmax(z):
//   loss = 1/W * sum_n [ (1-e) w[t_n] (-lp[n,t_n]) + e/C sum_c w[c] (-lp[n,c]) ]
//   dloss/dz[n,j] = 1/W * [ ((1-e) w[t_n] + e/C S) p[n,j] - (1-e) w[t_n] [j == t_n] - e/C w[j] ]
// with S = sum_c w[c]. One pass over the logits per direction; the study's [8, 6] is a few hundred
// flops, so rows go parallel only for large batches or class counts.
#include <cmath>

#include "kernels/cpu/cpu_util.h"

namespace engine::cpu {
namespace {

double weight_sum(const float* w, int64_t c) {
  if (!w) return static_cast<double>(c);
  double s = 0;
  for (int64_t j = 0; j < c; ++j) s += w[j];
  return s;
}

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const Tensor& weight,
                           float label_smoothing, Tensor& loss, Tensor& probs) {
  const int64_t n = logits.size(0), c = logits.size(1);
  const float* z = fptr(logits);
  const int64_t* t = targets.data<int64_t>();
  const float* w = fptr(weight);
  float* p = fptr(probs);
  const double e = label_smoothing;
  const double sw = weight_sum(w, c);
  double total = 0, wsum = 0;
#pragma omp parallel for reduction(+ : total, wsum) schedule(static) if (n * c > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = z + i * c;
    float* prow = p + i * c;
    float m = row[0];
    for (int64_t j = 1; j < c; ++j) m = row[j] > m ? row[j] : m;
    // Shifting by the row max keeps exp() in (0, 1]: logits of 80 or 1e4 do not overflow.
    double s = 0;
    for (int64_t j = 0; j < c; ++j) {
      prow[j] = std::exp(row[j] - m);
      s += prow[j];
    }
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t j = 0; j < c; ++j) prow[j] *= inv;
    // -lp[i, j] = log(s) - (z[i, j] - m), formed from small numbers to avoid cancellation.
    const double log_s = std::log(s);
    const int64_t ti = t[i];
    const double wt = w ? w[ti] : 1.0;
    double li = (1.0 - e) * wt * (log_s - (row[ti] - m));
    if (e != 0) {          // skipped when off, as PyTorch does, so a -inf logit gives no inf * 0
      double shifted = 0;  // sum_j w[j] (z[i, j] - m)
      for (int64_t j = 0; j < c; ++j) shifted += (w ? w[j] : 1.0) * (row[j] - m);
      li += e / c * (sw * log_s - shifted);
    }
    total += li;
    wsum += wt;
  }
  fptr(loss)[0] = static_cast<float>(total / wsum);
}

void cross_entropy_backward(const Tensor& probs, const Tensor& targets, const Tensor& weight,
                            float label_smoothing, float grad_loss, Tensor& glogits) {
  const int64_t n = probs.size(0), c = probs.size(1);
  const float* p = fptr(probs);
  const int64_t* t = targets.data<int64_t>();
  const float* w = fptr(weight);
  float* g = fptr(glogits);
  const float e = label_smoothing;
  double wsum = 0;
  if (w) {
    for (int64_t i = 0; i < n; ++i) wsum += w[t[i]];
  } else {
    wsum = static_cast<double>(n);
  }
  const float scale = static_cast<float>(grad_loss / wsum);
  const float smooth = e / static_cast<float>(c);                          // e/C
  const float smooth_all = static_cast<float>(smooth * weight_sum(w, c));  // e/C * S
#pragma omp parallel for schedule(static) if (n * c > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const float* prow = p + i * c;
    float* grow = g + i * c;
    const int64_t ti = t[i];
    const float hard = (1.f - e) * (w ? w[ti] : 1.f);  // (1-e) w[t_i]
    const float coef = hard + smooth_all;
    for (int64_t j = 0; j < c; ++j) grow[j] = scale * (coef * prow[j] - smooth * (w ? w[j] : 1.f));
    grow[ti] -= scale * hard;
  }
}

}  // namespace

void register_loss(KernelTable& t) {
  t.cross_entropy_forward = cross_entropy_forward;
  t.cross_entropy_backward = cross_entropy_backward;
}

}  // namespace engine::cpu
