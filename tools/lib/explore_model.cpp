// The explorer's model-side numbers; see explore_model.h.
#include "tools/lib/explore_model.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "data/loader.h"
#include "engine/autograd.h"
#include "models/custom_cnn.h"
#include "models/ensemble.h"
#include "models/transfer.h"

namespace app {
namespace {

using engine::Tensor;

// One batch through the layers forward() runs, keeping the penultimate layer on the way.
std::pair<Tensor, Tensor> features_and_logits(engine::Module& net, const Tensor& x) {
  Tensor f;
  if (auto* e = dynamic_cast<engine::Ensemble*>(&net)) {
    f = e->member_logits(x);
    return {f, (*e->fc1)(f)};
  }
  if (auto* c = dynamic_cast<engine::CustomCnn*>(&net)) {
    f = c->features(x);
    return {f, c->head(f)};
  }
  if (auto* t = dynamic_cast<engine::TransferModel*>(&net)) {
    f = t->features(x);
    return {f, t->head(f)};
  }
  throw engine::Error("run_model: no penultimate layer is known for a " + net.type_name());
}

// Checks that probs holds whole rows of num_classes and, when labels >= 0, that many rows.
void check_rows(const char* what, const std::vector<float>& probs, int num_classes,
                int64_t labels = -1) {
  ENGINE_CHECK(num_classes >= 1 && probs.size() % size_t(num_classes) == 0, what, ": ",
               probs.size(), " probabilities are not rows of ", num_classes, " classes");
  const int64_t rows = int64_t(probs.size() / size_t(num_classes));
  ENGINE_CHECK(labels < 0 || labels == rows, what, ": ", labels, " labels for ", rows, " rows");
}

int argmax(const float* p, int c) {
  int best = 0;
  for (int k = 1; k < c; ++k) best = p[k] > p[best] ? k : best;
  return best;
}

double entropy(const float* p, int c) {
  double h = 0;
  for (int k = 0; k < c; ++k) h -= p[k] > 0 ? double(p[k]) * std::log(double(p[k])) : 0.0;
  return h;
}

// Cyclic Jacobi on a small symmetric matrix (row-major, p x p, overwritten): eigenvalues in `w`
// and eigenvectors in the columns of `v`, sorted by eigenvalue, largest first.
void jacobi_eigen(std::vector<double>& a, int p, std::vector<double>& w, std::vector<double>& v) {
  v.assign(size_t(p * p), 0.0);
  for (int i = 0; i < p; ++i) v[size_t(i * p + i)] = 1;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (int i = 0; i < p; ++i) {
      diag += a[size_t(i * p + i)] * a[size_t(i * p + i)];
      for (int j = i + 1; j < p; ++j) off += a[size_t(i * p + j)] * a[size_t(i * p + j)];
    }
    if (off <= 1e-30 * diag || off == 0) break;
    for (int r = 0; r < p; ++r) {
      for (int q = r + 1; q < p; ++q) {
        const double arq = a[size_t(r * p + q)];
        if (arq == 0) continue;
        const double theta = (a[size_t(q * p + q)] - a[size_t(r * p + r)]) / (2 * arq);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < p; ++k) {  // columns r, q
          const double akr = a[size_t(k * p + r)], akq = a[size_t(k * p + q)];
          a[size_t(k * p + r)] = c * akr - s * akq;
          a[size_t(k * p + q)] = s * akr + c * akq;
        }
        for (int k = 0; k < p; ++k) {  // rows r, q
          const double ark = a[size_t(r * p + k)], aqk = a[size_t(q * p + k)];
          a[size_t(r * p + k)] = c * ark - s * aqk;
          a[size_t(q * p + k)] = s * ark + c * aqk;
        }
        for (int k = 0; k < p; ++k) {
          const double vkr = v[size_t(k * p + r)], vkq = v[size_t(k * p + q)];
          v[size_t(k * p + r)] = c * vkr - s * vkq;
          v[size_t(k * p + q)] = s * vkr + c * vkq;
        }
      }
    }
  }
  std::vector<int> order(static_cast<size_t>(p));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int i, int j) { return a[size_t(i * p + i)] > a[size_t(j * p + j)]; });
  std::vector<double> sorted(size_t(p * p));
  w.resize(size_t(p));
  for (int j = 0; j < p; ++j) {
    w[size_t(j)] = a[size_t(order[size_t(j)] * (p + 1))];
    for (int k = 0; k < p; ++k) sorted[size_t(k * p + j)] = v[size_t(k * p + order[size_t(j)])];
  }
  v = std::move(sorted);
}

// Modified Gram-Schmidt (two passes) on the p <= dim columns of q (dim x p, row-major). A column
// that is (numerically) in the span of the earlier ones is replaced by the next unit vector that
// is not, so the basis keeps p columns.
void orthonormalize(std::vector<double>& q, int64_t dim, int p) {
  auto col_norm = [&](int j) {
    double s = 0;
    for (int64_t r = 0; r < dim; ++r) s += q[size_t(r * p + j)] * q[size_t(r * p + j)];
    return std::sqrt(s);
  };
  int64_t next_unit = 0;
  for (int j = 0; j < p; ++j) {
    for (;;) {
      const double before = col_norm(j);
      for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < j; ++i) {
          double d = 0;
          for (int64_t r = 0; r < dim; ++r) d += q[size_t(r * p + i)] * q[size_t(r * p + j)];
          for (int64_t r = 0; r < dim; ++r) q[size_t(r * p + j)] -= d * q[size_t(r * p + i)];
        }
      }
      const double norm = col_norm(j);
      if (norm > 1e-12 * before && norm > 0) {
        for (int64_t r = 0; r < dim; ++r) q[size_t(r * p + j)] /= norm;
        break;
      }
      for (int64_t r = 0; r < dim; ++r) q[size_t(r * p + j)] = r == next_unit ? 1.0 : 0.0;
      ++next_unit;
    }
  }
}

// Covariance (dim x dim, full, over n) of the rows of x around `mean`, in double.
std::vector<double> covariance(const std::vector<float>& x, int64_t n, int64_t dim,
                               const std::vector<double>& mean) {
  std::vector<double> cov(size_t(dim * dim), 0.0);
  const int64_t chunk = std::clamp<int64_t>((int64_t(1) << 20) / dim, 64, 4096);
  std::vector<double> buf(size_t(std::min(chunk, n) * dim));
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t d = 0; d < dim; ++d) {
        buf[size_t(r * dim + d)] = double(x[size_t((r0 + r) * dim + d)]) - mean[size_t(d)];
      }
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(dim), int(rows), 1.0, buf.data(),
                int(dim), 1.0, cov.data(), int(dim));
  }
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = i; j < dim; ++j) {
      cov[size_t(i * dim + j)] /= double(n);
      cov[size_t(j * dim + i)] = cov[size_t(i * dim + j)];
    }
  }
  return cov;
}

// The top two eigenpairs of a symmetric positive semi-definite matrix by block subspace
// iteration: p columns from a fixed pseudo-random start, Rayleigh-Ritz each step, until both
// residuals are tiny next to the largest eigenvalue. Returns the vectors as two dim-long rows.
std::vector<double> top2_eigen(const std::vector<double>& cov, int64_t dim, double out_values[2]) {
  const int p = int(std::min<int64_t>(dim, 8));
  std::vector<double> q(size_t(dim * p)), z(size_t(dim * p)), h(size_t(p * p)), w, v;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (double& e : q) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    e = double(state >> 11) / double(uint64_t(1) << 53) - 0.5;
  }
  orthonormalize(q, dim, p);
  const int two = std::min(p, 2);
  for (int it = 0; it < 500; ++it) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(dim), p, int(dim), 1.0, cov.data(),
                int(dim), q.data(), p, 0.0, z.data(), p);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, p, int(dim), 1.0, q.data(), p, z.data(),
                p, 0.0, h.data(), p);
    for (int i = 0; i < p; ++i) {  // symmetrise away rounding
      for (int j = i + 1; j < p; ++j) {
        h[size_t(i * p + j)] = h[size_t(j * p + i)] =
            (h[size_t(i * p + j)] + h[size_t(j * p + i)]) / 2;
      }
    }
    jacobi_eigen(h, p, w, v);
    // Ritz vectors Q V and their images Z V; the residual of pair j is |Z v_j - w_j Q v_j|.
    std::vector<double> qv(size_t(dim * p)), zv(size_t(dim * p));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(dim), p, p, 1.0, q.data(), p,
                v.data(), p, 0.0, qv.data(), p);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(dim), p, p, 1.0, z.data(), p,
                v.data(), p, 0.0, zv.data(), p);
    double worst = 0;
    for (int j = 0; j < two; ++j) {
      double r = 0;
      for (int64_t d = 0; d < dim; ++d) {
        const double e = zv[size_t(d * p + j)] - w[size_t(j)] * qv[size_t(d * p + j)];
        r += e * e;
      }
      worst = std::max(worst, std::sqrt(r));
    }
    q = std::move(qv);
    if (worst <= 1e-10 * w[0]) break;
    q = std::move(zv);
    orthonormalize(q, dim, p);
  }
  std::vector<double> axes(size_t(2 * dim), 0.0);
  for (int j = 0; j < 2; ++j) {
    out_values[j] = j < two ? std::max(w[size_t(j)], 0.0) : 0.0;
    if (j >= two) continue;
    for (int64_t d = 0; d < dim; ++d) axes[size_t(j * dim + d)] = q[size_t(d * p + j)];
  }
  return axes;
}

}  // namespace

ModelOutputs run_model(LoadedModel& m, const data::ImageDataset& ds, int batch_size, int workers,
                       engine::Device dev, const std::function<void(int64_t, int64_t)>& progress) {
  ModelOutputs o;
  o.num_classes = int(m.info.classes.size());
  const int c = o.num_classes;
  data::DataLoader loader(ds, inference_loader_options(m.info, batch_size, workers, false, dev));
  engine::autograd::NoGradGuard no_grad;
  m.net->eval();
  loader.start_epoch(0);
  data::Batch b;
  int64_t passed = 0;
  while (loader.next(b)) {
    if (b.size() > 0) {
      auto [f, logits] = features_and_logits(*m.net, dev.is_cpu() ? b.images : b.images.to(dev));
      std::vector<int> pred = argmax_rows(logits, c);
      ENGINE_CHECK(f.dim() == 2 && f.size(0) == b.size(), "run_model: the penultimate layer of ",
                   m.net->type_name(), " is ", engine::shape_str(f.shape()), ", not [", b.size(),
                   ", D]");
      if (o.n == 0) o.feature_dim = f.size(1);
      std::vector<float> z = logits.to_vector(), fv = f.to_vector();
      o.features.insert(o.features.end(), fv.begin(), fv.end());
      o.pred.insert(o.pred.end(), pred.begin(), pred.end());
      o.kept.insert(o.kept.end(), b.indices.begin(), b.indices.end());
      for (int64_t i = 0; i < b.size(); ++i) {  // softmax in double
        const float* row = z.data() + i * c;
        const double mx = *std::max_element(row, row + c);
        double sum = 0;
        for (int k = 0; k < c; ++k) sum += std::exp(double(row[k]) - mx);
        for (int k = 0; k < c; ++k) o.probs.push_back(float(std::exp(double(row[k]) - mx) / sum));
      }
      o.n += b.size();
      passed = b.indices.back() + 1;
    }
    if (progress) progress(passed, ds.size());
  }
  if (progress && passed != ds.size()) progress(ds.size(), ds.size());
  return o;
}

EvalResult eval_from_predictions(const ModelOutputs& o, const std::vector<int>& labels) {
  check_rows("eval_from_predictions", o.probs, o.num_classes, int64_t(labels.size()));
  const int c = o.num_classes;
  EvalResult r;
  r.confusion.assign(size_t(c), std::vector<int64_t>(size_t(c), 0));
  double loss = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < o.n; ++i) {
    const int y = labels[size_t(i)];
    ENGINE_CHECK(y >= 0 && y < c, "eval_from_predictions: row ", i, " has label ", y,
                 ", not in 0..", c - 1);
    const float p = o.probs[size_t(i * c + y)];
    loss -= std::log(double(std::max(p, std::numeric_limits<float>::denorm_min())));
    correct += o.pred[size_t(i)] == y;
    r.confusion[size_t(y)][size_t(o.pred[size_t(i)])] += 1;
  }
  r.samples = o.n;
  if (o.n > 0) r.loss = loss / double(o.n), r.accuracy = double(correct) / double(o.n);
  return r;
}

double expected_calibration_error(const std::vector<float>& probs, const std::vector<int>& labels,
                                  int num_classes, int bins) {
  check_rows("expected_calibration_error", probs, num_classes, int64_t(labels.size()));
  ENGINE_CHECK(bins >= 1, "expected_calibration_error: bins ", bins, ": must be at least 1");
  std::vector<double> conf(size_t(bins), 0.0), hits(size_t(bins), 0.0), count(size_t(bins), 0.0);
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) continue;
    const float* p = probs.data() + i * size_t(num_classes);
    const int top = argmax(p, num_classes);
    const double pc = p[top];
    // Bin i holds (i/bins, (i+1)/bins]: the ceiling, less one.
    const int bin = std::clamp(int(std::ceil(pc * bins)) - 1, 0, bins - 1);
    conf[size_t(bin)] += pc;
    hits[size_t(bin)] += top == labels[i];
    count[size_t(bin)] += 1;
    total += 1;
  }
  double ece = 0;
  for (int b = 0; b < bins; ++b) {
    if (count[size_t(b)] > 0) ece += std::abs(hits[size_t(b)] - conf[size_t(b)]) / total;
  }
  return ece;
}

std::vector<float> mistakenness(const std::vector<float>& probs, const std::vector<int>& labels,
                                int num_classes) {
  check_rows("mistakenness", probs, num_classes, int64_t(labels.size()));
  std::vector<float> out(labels.size(), -1.f);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) continue;
    const float* p = probs.data() + i * size_t(num_classes);
    const double m = argmax(p, num_classes) != labels[i] ? 1.0 : -1.0;
    out[i] = float((m * std::exp(-entropy(p, num_classes)) + 1) / 2);
  }
  return out;
}

ConfidentLearning confident_learning(const std::vector<float>& probs,
                                     const std::vector<int>& labels, int num_classes) {
  check_rows("confident_learning", probs, num_classes, int64_t(labels.size()));
  const size_t n = labels.size(), c = size_t(num_classes);
  std::vector<double> sum(c, 0.0), count(c, 0.0);
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] < 0) continue;
    ENGINE_CHECK(labels[i] < num_classes, "confident_learning: row ", i, " has label ", labels[i],
                 " of ", num_classes, " classes");
    sum[size_t(labels[i])] += probs[i * c + size_t(labels[i])];
    count[size_t(labels[i])] += 1;
  }
  // cleanlab's slack of 1e-6 keeps a row whose p_j equals the mean from falling out by rounding.
  std::vector<double> threshold(c);
  for (size_t j = 0; j < c; ++j) {
    threshold[j] =
        count[j] > 0 ? sum[j] / count[j] - 1e-6 : std::numeric_limits<double>::infinity();
  }
  ConfidentLearning r;
  r.flagged.assign(n, 0);
  r.self_confidence.assign(n, -1.f);
  r.joint.assign(c, std::vector<int64_t>(c, 0));
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] < 0) continue;
    const float* p = probs.data() + i * c;
    r.self_confidence[i] = p[labels[i]];
    int best = -1;
    for (size_t j = 0; j < c; ++j) {
      if (p[j] >= threshold[j] && (best < 0 || p[j] > p[best])) best = int(j);
    }
    if (best < 0) continue;
    r.joint[size_t(labels[i])][size_t(best)] += 1;
    if (best != labels[i]) r.flagged[i] = 1, r.ranking.push_back(int64_t(i));
  }
  std::stable_sort(r.ranking.begin(), r.ranking.end(), [&](int64_t a, int64_t b) {
    return r.self_confidence[size_t(a)] < r.self_confidence[size_t(b)];
  });
  return r;
}

std::vector<float> softmax_entropy(const std::vector<float>& probs, int num_classes) {
  check_rows("softmax_entropy", probs, num_classes);
  std::vector<float> out(probs.size() / size_t(num_classes));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = float(entropy(probs.data() + i * size_t(num_classes), num_classes));
  }
  return out;
}

std::vector<float> top2_margin(const std::vector<float>& probs, int num_classes) {
  check_rows("top2_margin", probs, num_classes);
  std::vector<float> out(probs.size() / size_t(num_classes));
  for (size_t i = 0; i < out.size(); ++i) {
    const float* p = probs.data() + i * size_t(num_classes);
    float a = p[0], b = 0;  // top two
    for (int k = 1; k < num_classes; ++k) {
      if (p[k] > a) {
        b = a, a = p[k];
      } else if (p[k] > b) {
        b = p[k];
      }
    }
    out[i] = a - b;
  }
  return out;
}

Pca2 pca2(const std::vector<float>& x, int64_t n, int64_t dim) {
  ENGINE_CHECK(n >= 0 && dim >= 1 && x.size() == size_t(n * dim), "pca2: ", x.size(),
               " values are not ", n, " points of ", dim, " dimensions");
  Pca2 r;
  r.xy.assign(size_t(2 * n), 0.f);
  if (n == 0) return r;
  std::vector<double> mean(size_t(dim), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t d = 0; d < dim; ++d) mean[size_t(d)] += x[size_t(i * dim + d)];
  }
  for (double& m : mean) m /= double(n);
  std::vector<double> cov = covariance(x, n, dim, mean);
  double trace = 0;
  for (int64_t d = 0; d < dim; ++d) trace += cov[size_t(d * dim + d)];
  if (!(trace > 0)) return r;  // every point the same
  double values[2];
  std::vector<double> axes = top2_eigen(cov, dim, values);
  for (int a = 0; a < 2; ++a) {
    double* v = axes.data() + a * dim;
    int64_t big = 0;
    for (int64_t d = 1; d < dim; ++d) big = std::abs(v[d]) > std::abs(v[big]) ? d : big;
    if (v[big] < 0) std::for_each(v, v + dim, [](double& e) { e = -e; });
    r.explained[a] = values[a] / trace;
  }
  for (int64_t i = 0; i < n; ++i) {
    double s0 = 0, s1 = 0;
    for (int64_t d = 0; d < dim; ++d) {
      const double e = double(x[size_t(i * dim + d)]) - mean[size_t(d)];
      s0 += e * axes[size_t(d)];
      s1 += e * axes[size_t(dim + d)];
    }
    r.xy[size_t(2 * i)] = float(s0);
    r.xy[size_t(2 * i + 1)] = float(s1);
  }
  return r;
}

std::vector<float> knn_uniqueness(const std::vector<float>& x, int64_t n, int64_t dim, int k) {
  ENGINE_CHECK(n >= 0 && dim >= 1 && x.size() == size_t(n * dim), "knn_uniqueness: ", x.size(),
               " values are not ", n, " points of ", dim, " dimensions");
  ENGINE_CHECK(k >= 1, "knn_uniqueness: k ", k, ": must be at least 1");
  std::vector<float> out(size_t(n), 0.f);
  const int64_t kk = std::min<int64_t>(k, n - 1);
  if (kk <= 0) return out;
  // Candidates per point: a few more than k, because float GEMM distances lose precision to
  // cancellation (|a|^2 + |b|^2 - 2ab) and the exact re-measure may reorder near ties.
  const int64_t kc = std::min<int64_t>(kk + 4, n - 1);
  using Cand = std::pair<float, int64_t>;  // (approximate squared distance, index): a total order
  std::vector<Cand> cand(size_t(n * kc), Cand{std::numeric_limits<float>::infinity(), n});
  auto offer = [&](int64_t i, float d2, int64_t j) {
    Cand* c = cand.data() + i * kc;
    const Cand e{d2, j};
    if (!(e < c[kc - 1])) return;
    int64_t pos = kc - 1;
    while (pos > 0 && e < c[pos - 1]) c[pos] = c[pos - 1], --pos;
    c[pos] = e;
  };
  std::vector<float> sq(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t d = 0; d < dim; ++d) s += double(x[size_t(i * dim + d)]) * x[size_t(i * dim + d)];
    sq[size_t(i)] = float(s);
  }
  // Row block [r0, r1) against every point from r0 on: the block's rows take candidates from the
  // whole panel, the later points take them from the block's rows (the distance is symmetric).
  const int64_t block = 256;
  std::vector<float> g(size_t(std::min(block, n) * n));
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    const int64_t rows = std::min(block, n - r0), cols = n - r0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(cols), int(dim), 1.f,
                x.data() + r0 * dim, int(dim), x.data() + r0 * dim, int(dim), 0.f, g.data(),
                int(cols));
    auto d2 = [&](int64_t r, int64_t j) {  // r: row in the block, j: column of the panel
      return std::max(0.f, sq[size_t(r0 + r)] + sq[size_t(r0 + j)] - 2 * g[size_t(r * cols + j)]);
    };
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        if (j != r) offer(r0 + r, d2(r, j), r0 + j);
      }
    }
#pragma omp parallel for schedule(static)
    for (int64_t j = rows; j < cols; ++j) {
      for (int64_t r = 0; r < rows; ++r) offer(r0 + j, d2(r, j), r0 + r);
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::pair<double, int64_t>> exact(static_cast<size_t>(kc));
    for (int64_t c = 0; c < kc; ++c) {
      const int64_t j = cand[size_t(i * kc + c)].second;
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) {
        const double e = double(x[size_t(i * dim + d)]) - x[size_t(j * dim + d)];
        s += e * e;
      }
      exact[size_t(c)] = {s, j};
    }
    std::sort(exact.begin(), exact.end());
    double sum = 0;
    for (int64_t c = 0; c < kk; ++c) sum += std::sqrt(exact[size_t(c)].first);
    out[size_t(i)] = float(sum / double(kk));
  }
  return out;
}

}  // namespace app
