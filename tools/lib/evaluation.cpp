// Evaluation and prediction loops; see evaluation.h.
#include "tools/lib/evaluation.h"

#include <cmath>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/op_table.h"
#include "engine/ops.h"
#include "engine/storage.h"
#include "tools/lib/model_io.h"

namespace app {
namespace {

// Row-wise softmax of [B, C] logits on the host, in double.
std::vector<std::vector<float>> softmax_rows(const std::vector<float>& logits, int64_t b, int c) {
  std::vector<std::vector<float>> out(size_t(b), std::vector<float>(size_t(c), 0.f));
  for (int64_t i = 0; i < b; ++i) {
    const float* z = logits.data() + i * c;
    double m = z[0];
    for (int k = 1; k < c; ++k) m = std::max(m, double(z[k]));
    double sum = 0;
    for (int k = 0; k < c; ++k) sum += std::exp(double(z[k]) - m);
    for (int k = 0; k < c; ++k) out[i][k] = float(std::exp(double(z[k]) - m) / sum);
  }
  return out;
}

}  // namespace

engine::Device choose_device(const std::string& want, const std::string& backend) {
  if (!backend.empty()) {
    ENGINE_CHECK(backend == "native" || backend == "cudnn", "--backend ", backend,
                 ": must be native or cudnn");
    engine::set_default_cuda_backend(engine::parse_backend(backend));
  }
  if (want == "cpu") return engine::Device::cpu();
  const bool have = engine::cuda_device_available();
  if (want == "cuda") {
    ENGINE_CHECK(have, "--device cuda: no usable CUDA device (a CUDA build and a GPU are needed)");
    return engine::Device::cuda();
  }
  ENGINE_CHECK(want == "auto", "--device ", want, ": must be auto, cpu or cuda");
  // auto: the GPU when there is one whose backend runs convolutions. (The default backend is
  // resolved only with a GPU: that loads cuDNN, which a CPU run has no use for.)
  if (!have) return engine::Device::cpu();
  const engine::Backend b = engine::default_cuda_backend();
  if (engine::supports(b, &engine::KernelTable::conv2d_forward)) {
    return engine::Device::cuda();
  }
  std::printf("note: the %s CUDA backend has no conv2d kernel in this build; running on the CPU\n",
              engine::backend_name(b));
  return engine::Device::cpu();
}

std::vector<int> argmax_rows(const engine::Tensor& logits, int num_classes) {
  ENGINE_CHECK(logits.dim() == 2 && logits.size(1) == num_classes, "the model gives ",
               engine::shape_str(logits.shape()), " logits for ", num_classes, " classes");
  std::vector<float> z = logits.to_vector();
  std::vector<int> out(size_t(logits.size(0)));
  for (size_t i = 0; i < out.size(); ++i) {
    const float* row = z.data() + i * size_t(num_classes);
    int best = 0;
    for (int k = 1; k < num_classes; ++k) best = row[k] > row[best] ? k : best;
    out[i] = best;
  }
  return out;
}

data::LoaderOptions inference_loader_options(const ModelInfo& info, int batch_size, int workers,
                                             bool strict, engine::Device device) {
  ENGINE_CHECK(batch_size >= 1, "--batch-size ", batch_size, ": must be at least 1");
  ENGINE_CHECK(workers >= 0 && workers <= 64, "--workers ", workers, ": must be in 0..64");
  data::LoaderOptions lo;
  lo.order = data::SampleOrder::Sequential;
  lo.batch_size = batch_size;
  lo.threads = workers;
  lo.cache_bytes = 0;  // one pass
  lo.strict = strict;
  lo.pin_memory = device.is_cuda();
  lo.transform.image_size = info.image_size;
  lo.transform.resize_size = info.resize_size;
  if (info.mean) lo.transform.mean = *info.mean, lo.transform.std = *info.std;
  return lo;
}

EvalResult evaluate(engine::Module& net, data::DataLoader& loader, int num_classes,
                    engine::Device device) {
  return evaluate_batches(net, loader, num_classes,
                          [&](const data::Batch& b, engine::Tensor& y) {
                            y = device.is_cpu() ? b.labels : b.labels.to(device);
                            return net(device.is_cpu() ? b.images : b.images.to(device));
                          });
}

EvalResult evaluate_batches(
    engine::Module& net, data::DataLoader& loader, int num_classes,
    const std::function<engine::Tensor(const data::Batch&, engine::Tensor& labels)>& logits_of) {
  engine::autograd::NoGradGuard no_grad;
  net.eval();
  EvalResult r;
  r.confusion.assign(size_t(num_classes), std::vector<int64_t>(size_t(num_classes), 0));
  double loss_sum = 0;
  int64_t correct = 0;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    engine::Tensor y;
    engine::Tensor logits = logits_of(b, y);
    const int64_t n = logits.size(0);
    if (n == 0) continue;
    loss_sum += double(engine::cross_entropy(logits, y).item()) * double(n);
    std::vector<int> pred = argmax_rows(logits, num_classes);
    std::vector<int64_t> labels = y.to_vector_i64();
    for (int64_t i = 0; i < n; ++i) {
      correct += pred[size_t(i)] == labels[size_t(i)];
      r.confusion[size_t(labels[size_t(i)])][size_t(pred[size_t(i)])] += 1;
    }
    r.samples += n;
  }
  if (r.samples > 0) {
    r.loss = loss_sum / double(r.samples);
    r.accuracy = double(correct) / double(r.samples);
  }
  return r;
}

std::vector<ClassScores> class_scores(const std::vector<std::vector<int64_t>>& m) {
  const size_t n = m.size();
  std::vector<ClassScores> s(n);
  for (size_t c = 0; c < n; ++c) {
    int64_t tp = m[c][c], predicted = 0, actual = 0;
    for (size_t k = 0; k < n; ++k) predicted += m[k][c], actual += m[c][k];
    s[c].support = actual;
    s[c].precision = predicted ? double(tp) / double(predicted) : 0.0;
    s[c].recall = actual ? double(tp) / double(actual) : 0.0;
    const double pr = s[c].precision + s[c].recall;
    s[c].f1 = pr > 0 ? 2 * s[c].precision * s[c].recall / pr : 0.0;
  }
  return s;
}

nlohmann::json evaluation_json(const EvalResult& r, const std::vector<std::string>& classes) {
  nlohmann::json j;
  j["accuracy"] = r.accuracy;
  j["loss"] = r.loss;
  j["samples"] = r.samples;
  j["classes"] = classes;
  j["per_class"] = nlohmann::json::object();
  std::vector<ClassScores> s = class_scores(r.confusion);
  for (size_t c = 0; c < classes.size(); ++c) {
    j["per_class"][classes[c]] = {{"precision", s[c].precision},
                                  {"recall", s[c].recall},
                                  {"f1", s[c].f1},
                                  {"support", s[c].support}};
  }
  j["confusion_matrix"] = r.confusion;
  return j;
}

std::string evaluation_table(const EvalResult& r, const std::vector<std::string>& classes) {
  size_t w = 5;
  for (const auto& c : classes) w = std::max(w, c.size());
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "accuracy %.4f (%lld images), mean loss %.4f\n\n", r.accuracy,
                static_cast<long long>(r.samples), r.loss);
  out += buf;
  std::snprintf(buf, sizeof buf, "%-*s %9s %9s %9s %9s\n", int(w), "class", "precision", "recall",
                "f1", "support");
  out += buf;
  std::vector<ClassScores> s = class_scores(r.confusion);
  for (size_t c = 0; c < classes.size(); ++c) {
    std::snprintf(buf, sizeof buf, "%-*s %9.4f %9.4f %9.4f %9lld\n", int(w), classes[c].c_str(),
                  s[c].precision, s[c].recall, s[c].f1, static_cast<long long>(s[c].support));
    out += buf;
  }
  out += "\nconfusion matrix (rows: true class, columns: predicted)\n";
  std::snprintf(buf, sizeof buf, "%-*s", int(w), "");
  out += buf;
  size_t cw = 6;
  for (const auto& c : classes) cw = std::max(cw, std::min<size_t>(c.size(), 10) + 1);
  for (const auto& c : classes) {
    std::snprintf(buf, sizeof buf, " %*s", int(cw), c.substr(0, 10).c_str());
    out += buf;
  }
  out += "\n";
  for (size_t i = 0; i < classes.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%-*s", int(w), classes[i].c_str());
    out += buf;
    for (size_t k = 0; k < classes.size(); ++k) {
      std::snprintf(buf, sizeof buf, " %*lld", int(cw), static_cast<long long>(r.confusion[i][k]));
      out += buf;
    }
    out += "\n";
  }
  return out;
}

std::vector<std::vector<float>> predict_probabilities(engine::Module& net, data::DataLoader& loader,
                                                      int num_classes, engine::Device device,
                                                      std::vector<int64_t>* kept) {
  engine::autograd::NoGradGuard no_grad;
  net.eval();
  std::vector<std::vector<float>> probs;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    engine::Tensor x = device.is_cpu() ? b.images : b.images.to(device);
    engine::Tensor logits = net(x);
    ENGINE_CHECK(logits.dim() == 2 && logits.size(1) == num_classes, "the model gives ",
                 engine::shape_str(logits.shape()), " logits for ", num_classes, " classes");
    for (auto& row : softmax_rows(logits.to_vector(), b.size(), num_classes)) {
      probs.push_back(std::move(row));
    }
    if (kept) kept->insert(kept->end(), b.indices.begin(), b.indices.end());
  }
  return probs;
}

}  // namespace app
