// The explorer's model-side numbers (tools/lib/explore_model.h): each statistic on hand-made
// probabilities with answers worked out by hand; PCA and nearest-neighbour uniqueness against
// planted structure and brute force; CustomCnn::features as the input of fc3; run_model against
// the real evaluate tool on a checkpoint the real train tool wrote; and both label-error finders
// on a copy of the training set with 2% of its labels flipped.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

#include "engine/autograd.h"
#include "models/custom_cnn.h"
#include "testing.h"
#include "tool_testing.h"
#include "tools/lib/explore_model.h"

namespace {

namespace fs = std::filesystem;
using namespace tool_testing;

// Float inputs such as 0.9f differ from 0.9 by up to 3e-8; statistics are computed in double.
constexpr double kTol = 1e-6;

TEST(ExploreModel, ExpectedCalibrationErrorBinsAreHalfOpenOnTheLeft) {
  // 4 bins: (0, .25], (.25, .5], (.5, .75], (.75, 1]; the boundaries are exact in float.
  std::vector<float> p = {0.75f, 0.25f,  // label 0: bin 2 (0.75 closes it), right
                          0.7f,  0.3f,   // label 1: bin 2, wrong
                          0.5f,  0.5f,   // label 0: first maximum, confidence .5 in bin 1, right
                          0.1f,  0.9f,   // label 1: bin 3, right
                          0.2f,  0.8f};  // unlabelled: ignored
  std::vector<int> y = {0, 1, 0, 1, -1};
  // bin 1: |1 - .5| * 1/4; bin 2: |.5 - .725| * 2/4; bin 3: |1 - .9| * 1/4.
  EXPECT_NEAR(app::expected_calibration_error(p, y, 2, 4), 0.125 + 0.1125 + 0.025, kTol);
  // 15 bins: .9 and .8 fall in different bins, both right: (.1 + .2) / 2.
  EXPECT_NEAR(app::expected_calibration_error({0.9f, 0.1f, 0.2f, 0.8f}, {0, 1}, 2), 0.15, kTol);
  EXPECT_EQ(app::expected_calibration_error({0.9f, 0.1f}, {-1}, 2), 0.0);
}

TEST(ExploreModel, MistakennessIsFiftyOnesFormula) {
  std::vector<float> p = {0.5f, 0.5f, 0.0f,  // entropy ln 2: exp(-H) = 1/2
                          0.5f, 0.5f, 0.0f,  //
                          1.0f, 0.0f, 0.0f,  // certain: exp(-H) = 1
                          1.0f, 0.0f, 0.0f,  //
                          0.7f, 0.2f, 0.1f,  // H = 0.8018186 nats, exp(-H) = 0.4485126
                          0.7f, 0.2f, 0.1f};
  std::vector<int> y = {0, 1, 0, 1, 2, -1};
  std::vector<float> m = app::mistakenness(p, y, 3);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_NEAR(m[0], 0.25, kTol);  // agrees (first maximum is class 0): (-1/2 + 1) / 2
  EXPECT_NEAR(m[1], 0.75, kTol);  // disagrees: (1/2 + 1) / 2
  EXPECT_NEAR(m[2], 0.0, kTol);
  EXPECT_NEAR(m[3], 1.0, kTol);
  EXPECT_NEAR(m[4], 0.7242563, kTol);
  EXPECT_EQ(m[5], -1.f);
}

TEST(ExploreModel, EntropyAndTopTwoMargin) {
  std::vector<float> p = {0.25f, 0.25f, 0.5f, 1.f, 0.f, 0.f, 0.4f, 0.2f, 0.4f};
  std::vector<float> h = app::softmax_entropy(p, 3), m = app::top2_margin(p, 3);
  ASSERT_EQ(h.size(), 3u);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_NEAR(h[0], 1.5 * std::log(2.0), kTol);  // 2 * 1/4 ln 4 + 1/2 ln 2
  EXPECT_EQ(h[1], 0.f);
  EXPECT_NEAR(m[0], 0.25, kTol);
  EXPECT_EQ(m[1], 1.f);
  EXPECT_EQ(m[2], 0.f);  // a tie at the top
}

TEST(ExploreModel, ConfidentJointOnAThreeClassExample) {
  // Thresholds: class 0 mean(.9, .1) = .5; class 1 mean(.6, .2, .35) = .3833;
  // class 2 mean(.8, .1, .05) = .3167.
  std::vector<float> p = {
      0.90f, 0.05f, 0.05f,  // 0 label 0: candidates {0} -> 0
      0.10f, 0.10f, 0.80f,  // 1 label 0: {2} -> 2, flagged
      0.30f, 0.60f, 0.10f,  // 2 label 1: {1} -> 1
      0.60f, 0.20f, 0.20f,  // 3 label 1: {0} -> 0, flagged
      0.10f, 0.10f, 0.80f,  // 4 label 2: {2} -> 2
      0.45f, 0.45f, 0.10f,  // 5 label 2: {1} (.45 < .5 for class 0) -> 1, flagged
      0.10f, 0.80f, 0.10f,  // 6 unlabelled
      0.52f, 0.43f, 0.05f,  // 7 label 2: {0, 1} -> 0 (the larger), flagged
      0.35f, 0.35f, 0.30f,  // 8 label 1: no candidate, so not counted
  };
  std::vector<int> y = {0, 0, 1, 1, 2, 2, -1, 2, 1};
  app::ConfidentLearning cl = app::confident_learning(p, y, 3);
  EXPECT_EQ(cl.joint, (std::vector<std::vector<int64_t>>{{1, 0, 1}, {1, 1, 0}, {1, 1, 1}}));
  EXPECT_EQ(cl.flagged, (std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1, 0}));
  // Self-confidence ascending: 7 (.05), 1 and 5 (.1 each, by index), 3 (.2).
  EXPECT_EQ(cl.ranking, (std::vector<int64_t>{7, 1, 5, 3}));
  EXPECT_FLOAT_EQ(cl.self_confidence[3], 0.2f);
  EXPECT_EQ(cl.self_confidence[6], -1.f);
}

// Two orthogonal unit vectors of `dim` (>= 4), each with one clearly largest component.
std::pair<std::vector<double>, std::vector<double>> planted_axes(int64_t dim) {
  std::vector<double> u(static_cast<size_t>(dim)), v(static_cast<size_t>(dim));
  for (int64_t d = 0; d < dim; ++d)
    u[size_t(d)] = 1.0 + 0.1 * double(d % 7), v[size_t(d)] = d % 2 ? 1 : -1.3;
  v[3] = 3;  // one clearly largest component, so the sign rule has no near tie to break
  auto dot = [&](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  const double uu = dot(u, u), uv = dot(u, v);
  for (size_t i = 0; i < v.size(); ++i) v[i] -= uv / uu * u[i];
  const double nu = std::sqrt(dot(u, u)), nv = std::sqrt(dot(v, v));
  for (auto& e : u) e /= nu;
  for (auto& e : v) e /= nv;
  return {u, v};
}

// Points a*u + b*v + noise with sd(a) = 3, sd(b) = 1.5, noise sd 0.05 in every direction.
std::vector<float> anisotropic_cloud(int64_t n, int64_t dim, const std::vector<double>& u,
                                     const std::vector<double>& v) {
  engine::Generator gen(7);
  std::vector<float> ab = engine::Tensor::randn({n, 2}, gen).to_vector();
  std::vector<float> noise = engine::Tensor::randn({n, dim}, gen, 0.f, 0.05f).to_vector();
  std::vector<float> x(size_t(n * dim));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t d = 0; d < dim; ++d) {
      x[size_t(i * dim + d)] = float(10.0 + 3.0 * ab[size_t(2 * i)] * u[size_t(d)] +
                                     1.5 * ab[size_t(2 * i + 1)] * v[size_t(d)]) +
                               noise[size_t(i * dim + d)];
    }
  }
  return x;
}

TEST(ExploreModel, PcaRecoversThePlantedAxesDeterministically) {
  for (int64_t dim : {5, 64}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    const int64_t n = 2000;
    auto [u, v] = planted_axes(dim);
    std::vector<float> x = anisotropic_cloud(n, dim, u, v);
    app::Pca2 r = app::pca2(x, n, dim);
    ASSERT_EQ(r.xy.size(), size_t(2 * n));
    // Variances 9, 2.25 and 0.0025 per remaining direction: the shares up to sampling (~5%).
    const double total = 9 + 2.25 + 0.0025 * double(dim - 2);
    EXPECT_NEAR(r.explained[0], 9 / total, 0.05);
    EXPECT_NEAR(r.explained[1], 2.25 / total, 0.05);
    // The coordinates are the centred points on unit axes close to u and v (up to sign): their
    // correlation with the planted coefficients is near 1 in magnitude.
    std::vector<double> mean(size_t(dim), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < dim; ++d) mean[size_t(d)] += x[size_t(i * dim + d)] / double(n);
    double cu = 0, cv = 0, su = 0, sv = 0, s0 = 0, s1 = 0;
    for (int64_t i = 0; i < n; ++i) {
      double pu = 0, pv = 0;
      for (int64_t d = 0; d < dim; ++d) {
        const double e = x[size_t(i * dim + d)] - mean[size_t(d)];
        pu += e * u[size_t(d)], pv += e * v[size_t(d)];
      }
      cu += pu * r.xy[size_t(2 * i)], cv += pv * r.xy[size_t(2 * i + 1)];
      su += pu * pu, sv += pv * pv;
      s0 += double(r.xy[size_t(2 * i)]) * r.xy[size_t(2 * i)];
      s1 += double(r.xy[size_t(2 * i + 1)]) * r.xy[size_t(2 * i + 1)];
    }
    EXPECT_GT(std::abs(cu) / std::sqrt(su * s0), 0.999);
    EXPECT_GT(std::abs(cv) / std::sqrt(sv * s1), 0.999);
    // The sign rule: each axis's largest component is positive. u's are all positive, so the
    // first axis is +u; the second is v signed by v's largest component.
    EXPECT_GT(cu, 0);
    size_t big = 0;
    for (size_t d = 1; d < v.size(); ++d) big = std::abs(v[d]) > std::abs(v[big]) ? d : big;
    EXPECT_GT(cv * v[big], 0);
    app::Pca2 again = app::pca2(x, n, dim);
    EXPECT_EQ(std::memcmp(r.xy.data(), again.xy.data(), r.xy.size() * sizeof(float)), 0);
    EXPECT_EQ(r.explained[0], again.explained[0]);
  }
}

TEST(ExploreModel, PcaAxisSignsPutTheLargestComponentPositive) {
  // Points along -e1 mostly and e0 a little: the first axis is +-e1, and the sign rule makes it
  // +e1, so a point at -5 e1 maps to x = -5 (after centring).
  std::vector<float> x = {0, -5, 0, 0, 5, 0, 1, 0, 0, -1, 0, 0};
  app::Pca2 r = app::pca2(x, 4, 3);
  EXPECT_NEAR(r.xy[0], -5, 1e-5);
  EXPECT_NEAR(r.xy[2], 5, 1e-5);
  EXPECT_NEAR(r.xy[5], 1, 1e-5);  // point 2 on the second axis, +e0
  EXPECT_NEAR(r.explained[0], 50.0 / 52.0, 1e-12);
  EXPECT_NEAR(r.explained[1], 2.0 / 52.0, 1e-12);
  app::Pca2 same = app::pca2({1, 2, 1, 2}, 2, 2);  // no variance
  EXPECT_EQ(same.xy, std::vector<float>(4, 0.f));
  EXPECT_EQ(same.explained[0], 0.0);
}

TEST(ExploreModel, KnnUniquenessEqualsBruteForce) {
  const int64_t n = 700, dim = 9;
  engine::Generator gen(3);
  std::vector<float> x = engine::Tensor::randn({n, dim}, gen, 100.f, 1.f).to_vector();
  // Duplicates (distance 0) and a far outlier.
  std::copy(x.begin(), x.begin() + dim, x.begin() + 5 * dim);
  std::copy(x.begin(), x.begin() + dim, x.begin() + 600 * dim);
  for (int64_t d = 0; d < dim; ++d) x[size_t(7 * dim + d)] += 40.f;
  for (int k : {1, 3}) {
    std::vector<float> got = app::knn_uniqueness(x, n, dim, k);
    ASSERT_EQ(got.size(), size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> dist;
      for (int64_t j = 0; j < n; ++j) {
        if (j == i) continue;
        double s = 0;
        for (int64_t d = 0; d < dim; ++d) {
          const double e = double(x[size_t(i * dim + d)]) - x[size_t(j * dim + d)];
          s += e * e;
        }
        dist.push_back(std::sqrt(s));
      }
      std::sort(dist.begin(), dist.end());
      double want = 0;
      for (int c = 0; c < k; ++c) want += dist[size_t(c)] / k;
      ASSERT_NEAR(got[size_t(i)], want, 1e-5 * want + 1e-6) << "point " << i << " k " << k;
    }
    EXPECT_EQ(got, app::knn_uniqueness(x, n, dim, k));
  }
  EXPECT_EQ(app::knn_uniqueness({}, 0, dim), std::vector<float>{});
  EXPECT_EQ(app::knn_uniqueness({1, 2}, 1, 2), std::vector<float>{0.f});
  // Fewer points than k: the mean over the others. From 0 on a line: 1 and 3 -> 2.
  EXPECT_NEAR(app::knn_uniqueness({0, 1, 3}, 3, 1)[0], 2.0, 1e-6);
}

TEST(ExploreModel, CustomCnnFeaturesThenFc3IsForward) {
  engine::Generator gen(4);
  engine::CustomCnn net(
      {.variant = engine::CnnVariant::BnDropout, .image_size = 32, .width = 0.25f}, gen);
  net.eval();
  engine::autograd::NoGradGuard no_grad;
  engine::Tensor x = engine::Tensor::randn({3, 3, 32, 32}, gen);
  engine::Module* fc3 = nullptr;
  for (auto& [name, m] : net.named_modules()) fc3 = name == "fc3" ? m : fc3;
  ASSERT_NE(fc3, nullptr);
  engine::Tensor f = net.features(x);
  EXPECT_EQ(f.shape(), (engine::Shape{3, 64}));  // hidden width 256 * 0.25
  EXPECT_EQ((*fc3)(f).to_vector(), net(x).to_vector());
  EXPECT_EQ(net.head(f).to_vector(), net(x).to_vector());
}

// One synthetic dataset written by make_dataset and one quarter-width model trained on it by
// train for the tests below (2 epochs: test accuracy 1.0 at epoch 2, and best.safetensors
// classifies every training image right).
struct Trained {
  TempDir dir;
  std::string data, checkpoint;
};

const Trained& trained() {
  static Trained t;
  static bool made = [] {
    t.data = t.dir / "ds";
    ToolRun d = run("make_dataset", {"--out", t.data, "--train-per-class", "50", "--test-per-class",
                                     "10", "--pred", "4", "--size", "32", "--seed", "3"});
    EXPECT_EQ(d.rc, 0) << d.out << d.err;
    ToolRun r =
        run("train", {"--train-dir", t.data + "/seg_train", "--test-dir", t.data + "/seg_test",
                      "--out", t.dir / "run", "--epochs", "2", "--width", "0.25", "--image-size",
                      "32", "--lr", "0.0003", "--threads", "2", "--no-plot", "--seed", "5"});
    EXPECT_EQ(r.rc, 0) << r.out << r.err;
    t.checkpoint = t.dir / "run/best.safetensors";
    return true;
  }();
  (void)made;
  return t;
}

std::vector<int> row_labels(const data::ImageDataset& ds, const app::ModelOutputs& o) {
  std::vector<int> y;
  for (int64_t i : o.kept) y.push_back(ds.samples()[size_t(i)].label);
  return y;
}

TEST(ExploreModel, RunModelPredictsWhatEvaluateReports) {
  const Trained& t = trained();
  ASSERT_TRUE(fs::exists(t.checkpoint));
  TempDir d;
  ToolRun e = run("evaluate", {"--checkpoint", t.checkpoint, "--data", t.data + "/seg_test",
                               "--json", d / "eval.json"});
  ASSERT_EQ(e.rc, 0) << e.out << e.err;
  nlohmann::json ev = nlohmann::json::parse(slurp(d / "eval.json"));

  app::LoadedModel m = app::load_weights(t.checkpoint);
  data::ImageDataset ds = data::ImageDataset::folder(t.data + "/seg_test");
  int64_t calls = 0, last = 0;
  // evaluate's defaults: --batch-size 64, --workers 2.
  app::ModelOutputs o = app::run_model(m, ds, 64, 2, engine::Device::cpu(),
                                       [&](int64_t a, int64_t) { ++calls, last = a; });
  EXPECT_EQ(o.n, 60);
  EXPECT_EQ(o.kept.size(), 60u);
  EXPECT_EQ(o.feature_dim, 64);
  EXPECT_EQ(o.features.size(), size_t(60 * 64));
  EXPECT_EQ(o.probs.size(), size_t(60 * 6));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last, 60);
  app::EvalResult r = app::eval_from_predictions(o, row_labels(ds, o));
  EXPECT_EQ(nlohmann::json(r.confusion), ev["confusion_matrix"]);
  EXPECT_EQ(r.accuracy, ev["accuracy"].get<double>());
  EXPECT_EQ(r.samples, ev["samples"].get<int64_t>());
  // evaluate's loss comes from float cross-entropy per batch, ours from the double softmax.
  EXPECT_NEAR(r.loss, ev["loss"].get<double>(), 1e-4 * ev["loss"].get<double>() + 1e-6);
  // A smaller batch gives the same predictions.
  app::ModelOutputs small = app::run_model(m, ds, 7, 0, engine::Device::cpu(), nullptr);
  EXPECT_EQ(small.pred, o.pred);
}

TEST(ExploreModel, BothFindersRankFlippedLabelsFirst) {
  // The study's situation: a model trained on clean labels (trained()) looks at a dataset with
  // label noise, here a copy of its training set with 2% of the labels flipped (every 50th image
  // moved to the next class's folder). The model is not retrained on the noisy copy.
  const Trained& t = trained();
  ASSERT_TRUE(fs::exists(t.checkpoint));
  TempDir d;
  const std::string root = d / "flipped";
  fs::copy(t.data + "/seg_train/seg_train", root, fs::copy_options::recursive);
  std::vector<std::string> classes;
  for (auto& e : fs::directory_iterator(root)) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  int flipped_count = 0;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(root + "/" + classes[c])) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (size_t i = 7; i < files.size(); i += 50, ++flipped_count) {
      fs::rename(files[i], root + "/" + classes[(c + 1) % classes.size()] + "/flipped_" +
                               files[i].filename().string());
    }
  }
  ASSERT_EQ(flipped_count, 6);  // 2% of 300

  app::LoadedModel m = app::load_weights(t.checkpoint);
  data::ImageDataset ds = data::ImageDataset::folder(root);
  app::ModelOutputs o = app::run_model(m, ds, 64, 2, engine::Device::cpu(), nullptr);
  ASSERT_EQ(o.n, 300);
  std::set<int64_t> flipped;
  for (int64_t i = 0; i < o.n; ++i) {
    if (ds.samples()[size_t(o.kept[size_t(i)])].path.find("flipped_") != std::string::npos) {
      flipped.insert(i);
    }
  }
  ASSERT_EQ(flipped.size(), 6u);
  const std::vector<int> y = row_labels(ds, o);
  auto precision_at_k = [&](const std::vector<int64_t>& ranking) {
    size_t hits = 0;
    for (size_t i = 0; i < std::min(ranking.size(), flipped.size()); ++i) {
      hits += flipped.count(ranking[i]);
    }
    return double(hits) / double(flipped.size());
  };

  std::vector<float> mist = app::mistakenness(o.probs, y, o.num_classes);
  std::vector<int64_t> by_mistakenness(static_cast<size_t>(o.n));
  std::iota(by_mistakenness.begin(), by_mistakenness.end(), 0);
  std::stable_sort(by_mistakenness.begin(), by_mistakenness.end(),
                   [&](int64_t a, int64_t b) { return mist[size_t(a)] > mist[size_t(b)]; });
  EXPECT_GE(precision_at_k(by_mistakenness), 0.5);

  app::ConfidentLearning cl = app::confident_learning(o.probs, y, o.num_classes);
  EXPECT_GE(precision_at_k(cl.ranking), 0.5);
  std::printf("precision at %zu: mistakenness %.2f, confident learning %.2f (%zu flagged)\n",
              flipped.size(), precision_at_k(by_mistakenness), precision_at_k(cl.ranking),
              cl.ranking.size());
}

}  // namespace
