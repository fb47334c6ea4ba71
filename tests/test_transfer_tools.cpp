// train / evaluate / predict with the transfer models, run as a user runs them: fine-tuning each
// backbone from converted weights (fixtures: tests/py/fx_transfer.py, torchvision's ResNet-50 and
// MobileNetV2 at --random-seed 0), the ensemble of the two fine-tuned checkpoints, the feature
// cache (used, counted, equal to training without it, refused where it would be wrong, rebuilt
// when the weights change), and every bad weights file or setting as one clear error.
//
// Inputs are 64x64 (--image-size 64, the study's plain resize) to keep ResNet-50 cheap here; one
// run uses the weights file's own preprocessing (224, resize 256) end to end.
#include <set>

#include "data/synthetic.h"
#include "engine/safetensors.h"
#include "testing.h"
#include "tool_testing.h"

namespace {

namespace fs = std::filesystem;
using namespace tool_testing;

const std::string& dataset() {
  static TempDir dir;
  static const std::string root = dir.str();
  static bool made = [] {
    data::SyntheticOptions o;
    o.out_dir = root;
    o.train_per_class = 4;
    o.test_per_class = 2;
    o.pred_count = 3;
    o.size = 64;
    o.seed = 12;
    data::make_synthetic_dataset(o);
    return true;
  }();
  (void)made;
  return root;
}

std::string weights(const std::string& arch) {
  return engine::testing::fixture_path("transfer_" + arch + ".safetensors");
}

std::vector<std::string> args(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> a = {"--train-dir", dataset() + "/seg_train", "--test-dir",
                                dataset() + "/seg_test", "--out", out, "--threads", "2",
                                "--no-plot", "--seed", "3", "--batch-size", "4"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// Fine-tunes arch's head on frozen features; returns the run folder.
std::string fine_tune(TempDir& dir, const std::string& arch, const std::string& epochs = "2") {
  const std::string out = dir / arch;
  std::vector<std::string> a = {"--model",           arch,     "--weights", weights(arch),
                                "--freeze-backbone", "--epochs", epochs,     "--image-size", "64"};
  ToolRun r = run("train", args(out, a));
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  return out;
}

TEST(TransferTools, FineTuneEachBackboneThenTheEnsembleTrainEvaluatePredict) {
  TempDir dir;
  std::map<std::string, std::string> runs;
  for (const std::string arch : {"resnet50", "mobilenet_v2"}) {
    runs[arch] = fine_tune(dir, arch);
    const std::string best = runs[arch] + "/best.safetensors";
    ToolRun e = run("evaluate", {"--checkpoint", best, "--data", dataset() + "/seg_test"});
    EXPECT_EQ(e.rc, 0) << e.err;
    EXPECT_NE(e.out.find("accuracy"), std::string::npos) << e.out;
    ToolRun p = run("predict", {"--checkpoint", best, "--images", dataset() + "/seg_pred",
                                "--output", dir / (arch + ".csv")});
    EXPECT_EQ(p.rc, 0) << p.err;
    EXPECT_EQ(count(slurp(dir / (arch + ".csv")), "\n"), 1 + 3);
  }
  const std::string ens = dir / "ensemble";
  ToolRun t = run("train", args(ens, {"--model", "ensemble", "--weights-a",
                                      runs["resnet50"] + "/best.safetensors", "--weights-b",
                                      runs["mobilenet_v2"] + "/best.safetensors", "--epochs", "2"}));
  ASSERT_EQ(t.rc, 0) << t.out << t.err;
  EXPECT_NE(t.out.find("features (train): 24 computed"), std::string::npos) << t.out;
  // The ensemble's checkpoint holds everything: it predicts with the members' runs gone.
  fs::remove_all(runs["resnet50"]);
  fs::remove_all(runs["mobilenet_v2"]);
  const auto meta = engine::safetensors::read_file(ens + "/best.safetensors").metadata;
  EXPECT_EQ(meta.at("model"), "ensemble");
  ToolRun e = run("evaluate", {"--checkpoint", ens + "/best.safetensors", "--data",
                               dataset() + "/seg_test"});
  EXPECT_EQ(e.rc, 0) << e.err;
  ToolRun p = run("predict", {"--checkpoint", ens + "/best.safetensors", "--images",
                              dataset() + "/seg_pred", "--output", dir / "ens.csv"});
  EXPECT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(count(slurp(dir / "ens.csv"), "\n"), 1 + 3);
}

// With no --image-size the run takes the weights file's preprocessing (torchvision's preset) and
// its checkpoints carry it to evaluate and predict.
TEST(TransferTools, WeightsFilePreprocessingIsUsedAndRecorded) {
  TempDir dir;
  const std::string out = dir / "run";
  ToolRun r = run("train", args(out, {"--model", "mobilenet_v2", "--weights",
                                      weights("mobilenet_v2"), "--freeze-backbone", "--epochs",
                                      "1"}));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("224x224 input"), std::string::npos) << r.out;
  const auto cfg = nlohmann::json::parse(slurp(out + "/config.json"));
  EXPECT_EQ(cfg.at("image_size"), 224);
  EXPECT_EQ(cfg.at("resize_size"), 256);
  const auto meta = engine::safetensors::read_file(out + "/last.safetensors").metadata;
  EXPECT_EQ(meta.at("image_size"), "224");
  EXPECT_EQ(meta.at("resize_size"), "256");
  EXPECT_EQ(meta.at("weights"), "random:0");
  ToolRun e = run("evaluate", {"--checkpoint", out + "/last.safetensors", "--data",
                               dataset() + "/seg_test"});
  EXPECT_EQ(e.rc, 0) << e.err;
}

// The cache gives the head the same weights as recomputing the backbone every epoch (within 1e-5:
// the features differ by float rounding, since the backbone's GEMMs see other batch compositions).
// With SGD: RMSprop's first steps move a weight by about lr x 3.16 whatever its gradient's size, so
// a weight whose pooled ReLU6 feature is 0 in one run and 1e-9 in the other moves by 0.16 in one
// and not at all in the other (measured: 9 of 7680 weights of classifier.1, 4.6e-4 apart).
TEST(TransferTools, FeatureCacheChangesNothing) {
  TempDir dir;
  auto train = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {"--model", "mobilenet_v2", "--weights", weights("mobilenet_v2"),
                                  "--freeze-backbone", "--epochs", "3", "--image-size", "64",
                                  "--optimizer", "sgd", "--lr", "0.01"};
    a.insert(a.end(), extra.begin(), extra.end());
    ToolRun r = run("train", args(out, a));
    EXPECT_EQ(r.rc, 0) << r.err;
    return r;
  };
  const std::string cached = dir / "cached", plain = dir / "plain";
  EXPECT_NE(train(cached, {}).out.find("computed once"), std::string::npos);
  ToolRun r = train(plain, {"--no-feature-cache"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("feature cache: not used (--no-feature-cache)"), std::string::npos);
  auto a = engine::load_tensors(cached + "/last.safetensors");
  auto b = engine::load_tensors(plain + "/last.safetensors");
  EXPECT_ALLCLOSE(a.at("classifier.1.weight"), b.at("classifier.1.weight"), 1e-5, 1e-5);
  EXPECT_ALLCLOSE(a.at("classifier.1.bias"), b.at("classifier.1.bias"), 1e-5, 1e-5);
  const auto sa = engine::load_tensors(cached + "/last.safetensors");
  for (const auto& [name, t] : sa) {
    if (name.rfind("classifier.", 0) == 0) continue;
    EXPECT_EQ(std::memcmp(t.raw_data(), b.at(name).raw_data(), t.nbytes()), 0) << name;
  }
}

TEST(TransferTools, FeatureCacheCountsItsHits) {
  TempDir dir;
  const std::string out = dir / "run";
  ToolRun r = run("train", args(out, {"--model", "resnet50", "--weights", weights("resnet50"),
                                      "--freeze-backbone", "--epochs", "3", "--image-size", "64"}));
  ASSERT_EQ(r.rc, 0) << r.err;
  // 24 train + 12 test images, features computed once; the head then gets 3 x (24 + 12) rows.
  EXPECT_NE(r.out.find("feature cache: 36 rows computed, 0 read from disk, 108 served"),
            std::string::npos)
      << r.out;
}

TEST(TransferTools, FeatureCacheIsNotUsedWhereItWouldBeWrong) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--augment"}, "not used (--augment"},
      {{"--frozen-bn", "train"}, "not used (--frozen-bn train"},
      {{"--unfreeze-from", "features.17"}, "not used (--unfreeze-from"},
  };
  int i = 0;
  for (const auto& [extra, said] : cases) {
    std::vector<std::string> a = {"--model",         "mobilenet_v2", "--weights",
                                  weights("mobilenet_v2"), "--freeze-backbone", "--epochs", "1",
                                  "--image-size",    "64",           "--stop-after-steps", "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    ToolRun r = run("train", args(dir / std::to_string(i++), a));
    EXPECT_EQ(r.rc, 130) << r.err;
    EXPECT_NE(r.out.find(said), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("computed once"), std::string::npos) << r.out;
  }
}

// On disk (--feature-cache-mb 0) the rows survive a resume, which needs neither the weights file
// (the state holds the weights) nor a recomputation; a damaged cache file is rebuilt, not read.
TEST(TransferTools, FeatureCacheFileIsReusedOnResumeAndRebuiltWhenDamaged) {
  TempDir dir;
  const std::string w = dir / "weights.safetensors";
  fs::copy_file(weights("mobilenet_v2"), w);
  const std::string out = dir / "run";
  auto train = [&](const std::string& epochs, bool resume) {
    std::vector<std::string> a = {"--model", "mobilenet_v2", "--weights", w, "--freeze-backbone",
                                  "--epochs", epochs, "--image-size", "64",
                                  "--feature-cache-mb", "0"};
    if (resume) a = {"--epochs", epochs, "--resume"};
    return run("train", args(out, a));
  };
  ToolRun r1 = train("1", false);
  ASSERT_EQ(r1.rc, 0) << r1.err;
  EXPECT_NE(r1.out.find("features (train): 24 computed, kept in " + out + "/features/train-"),
            std::string::npos)
      << r1.out;
  fs::remove(w);  // resuming needs only the run folder
  ToolRun r2 = train("2", true);
  ASSERT_EQ(r2.rc, 0) << r2.err;
  EXPECT_NE(r2.out.find("features (train): 24 rows read from"), std::string::npos) << r2.out;
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(out + "/features"))
    if (e.path().extension() == ".f32") files.push_back(e.path());
  ASSERT_EQ(files.size(), 2u);  // train and test
  for (const auto& f : files) fs::resize_file(f, fs::file_size(f) - 4);
  ToolRun r3 = train("3", true);
  ASSERT_EQ(r3.rc, 0) << r3.err;
  EXPECT_NE(r3.out.find("features (train): 24 computed"), std::string::npos) << r3.out;
  EXPECT_NE(r3.out.find("features (test): 12 computed"), std::string::npos) << r3.out;
}

TEST(TransferTools, BadWeightsAndSettingsGiveOneClearError) {
  TempDir dir;
  const std::string text = dir / "notes.safetensors", cut = dir / "cut.safetensors",
                    nokey = dir / "nokey.safetensors", shape = dir / "shape.safetensors";
  std::ofstream(text) << "these are not weights\n";
  {
    const std::string bytes = slurp(weights("resnet50"));
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    auto f = engine::safetensors::read_file(weights("resnet50"));
    auto g = f;
    std::erase_if(g.entries, [](const auto& e) { return e.name == "layer2.1.conv2.weight"; });
    engine::safetensors::write_file(nokey, g);
    for (auto& e : f.entries)
      if (e.name == "layer1.0.bn1.weight") e.shape = {32, 2};
    engine::safetensors::write_file(shape, f);
  }
  const std::string r50 = weights("resnet50"), mnv2 = weights("mobilenet_v2");
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
      {{"--model", "resnet50", "--weights", mnv2}, {mnv2, "holds 'mobilenet_v2' weights, not 'resnet50'"}},
      {{"--model", "resnet50", "--weights", text}, {text, "not a safetensors file"}},
      {{"--model", "resnet50", "--weights", cut}, {cut}},
      {{"--model", "resnet50", "--weights", nokey}, {nokey, "missing keys", "layer2.1.conv2.weight"}},
      {{"--model", "resnet50", "--weights", shape}, {shape, "mis-shaped", "layer1.0.bn1.weight"}},
      {{"--model", "ensemble", "--weights-a", r50, "--weights-b", mnv2},
       {"--weights-a", r50, "not a resnet50 fine-tuned on this data", "1000 classes"}},
      {{"--model", "ensemble", "--weights-a", mnv2, "--weights-b", mnv2},
       {"--weights-a", "holds 'mobilenet_v2' weights, not 'resnet50'"}},
      {{"--model", "ensemble", "--weights-a", r50}, {"--weights-b"}},
      {{"--model", "resnet50", "--image-size", "16"}, {"--image-size 16"}},
      {{"--model", "simple", "--freeze-backbone"}, {"--freeze-backbone"}},
      {{"--model", "resnet50", "--unfreeze-from", "layer4"}, {"--unfreeze-from needs"}},
      {{"--model", "resnet50", "--weights", r50, "--freeze-backbone", "--unfreeze-from", "layer9"},
       {"--unfreeze-from 'layer9'", "layer4.2"}},
      {{"--model", "mobilenet_v2", "--frozen-bn", "sometimes"}, {"--frozen-bn"}},
  };
  int i = 0;
  for (const auto& [a, parts] : cases) {
    const std::string out = dir / ("bad" + std::to_string(i++));
    ToolRun r = run("train", args(out, a));
    EXPECT_EQ(r.rc, 1) << r.out << r.err;
    EXPECT_EQ(count(r.err, "\n"), 1) << r.err;
    for (const auto& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << p << " not in " << r.err;
    EXPECT_FALSE(fs::exists(out + "/last.state.safetensors")) << out;
    EXPECT_FALSE(fs::exists(out + "/last.safetensors")) << out;
  }
}

}  // namespace
