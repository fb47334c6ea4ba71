// The explorer run as a user runs it: on a synthetic set with planted cases (near copies, exact
// copies across splits, a grey, a black and a blurred image, an odd size, broken files) every
// planted case is found and flagged; with a checkpoint its numbers equal evaluate's JSON; a rerun
// writes byte-identical data files; bad input is one clear line and never a half-written report.
// The page itself is tested in a real browser by tests/browser (label `browser`).
#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "data/image.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "engine/file_io.h"
#include "testing.h"
#include "tool_testing.h"

namespace {

namespace fs = std::filesystem;
using namespace tool_testing;
using json = nlohmann::json;

void write_jpeg(const std::string& path, const data::Image& img, int quality) {
  std::vector<uint8_t> b = data::encode_jpeg(img, quality);
  engine::write_file_atomic(path, {std::span<const uint8_t>(b)});
}

data::Image box_blur(const data::Image& src, int r) {
  data::Image out = src;
  for (int y = 0; y < src.height; ++y) {
    for (int x = 0; x < src.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        int sum = 0, n = 0;
        for (int dy = -r; dy <= r; ++dy) {
          for (int dx = -r; dx <= r; ++dx) {
            const int yy = std::clamp(y + dy, 0, src.height - 1);
            const int xx = std::clamp(x + dx, 0, src.width - 1);
            sum += src.row(yy)[xx * 3 + c], ++n;
          }
        }
        out.row(y)[x * 3 + c] = uint8_t(sum / n);
      }
    }
  }
  return out;
}

// The planted cases, by file name (relative to the dataset root) -> what must be found.
struct Planted {
  std::string root;
  std::vector<std::string> forest;  // file names of the first forest training images: the originals
};

// A set large enough that the 0.5th percentile lies above the three planted outliers (820 good
// images: the 5th-smallest value), 150x150 as the Intel set, with the planted cases added.
const Planted& planted() {
  static TempDir dir;
  static Planted p = [] {
    Planted p;
    p.root = dir.str() + "/intel";
    data::SyntheticOptions o;
    o.out_dir = p.root;
    o.train_per_class = 100;
    o.test_per_class = 30;
    o.pred_count = 40;
    o.size = 150;
    o.seed = 3;
    data::make_synthetic_dataset(o);
    const std::string train = p.root + "/seg_train/seg_train/",
                      test = p.root + "/seg_test/seg_test/";
    const std::string pred = p.root + "/seg_pred/seg_pred/";
    std::vector<std::string> forest;
    for (const auto& e : fs::directory_iterator(train + "forest"))
      forest.push_back(e.path().string());
    std::sort(forest.begin(), forest.end());
    for (int k = 0; k < 5; ++k) p.forest.push_back(fs::path(forest[size_t(k)]).filename().string());
    data::Image a = data::read_image(forest[0]), b = data::read_image(forest[1]);
    data::Image c = data::read_image(forest[2]);
    // Near copies: re-encoded at quality 60 (into the test split: leakage), downscaled and
    // upscaled, brightened by 15 levels.
    write_jpeg(test + "forest/planted_q60.jpg", a, 60);
    write_jpeg(train + "forest/planted_rescaled.jpg",
               data::resize_bilinear(data::resize_bilinear(b, 75, 75), 150, 150), 90);
    data::Image bright = c;
    for (auto& v : bright.pixels) v = uint8_t(std::min(255, v + 15));
    write_jpeg(train + "forest/planted_bright.jpg", bright, 90);
    // An exact copy (same bytes) in the unlabelled split.
    fs::copy_file(forest[3], pred + "planted_exact.jpg");
    // Outliers: grey, black, blurred; an odd size.
    data::Image grey(150, 150), black(150, 150);
    std::fill(grey.pixels.begin(), grey.pixels.end(), uint8_t(128));
    std::fill(black.pixels.begin(), black.pixels.end(), uint8_t(0));
    write_jpeg(train + "sea/planted_grey.jpg", grey, 90);
    write_jpeg(train + "sea/planted_black.jpg", black, 90);
    data::Image blurred = data::read_image(forest[4]);
    for (int k = 0; k < 3; ++k) blurred = box_blur(blurred, 3);
    write_jpeg(train + "street/planted_blurred.jpg", blurred, 90);
    write_jpeg(train + "glacier/planted_odd.jpg", data::resize_bilinear(a, 120, 150), 90);
    // Broken files: truncated, and not an image at all.
    std::vector<uint8_t> jpg = data::encode_jpeg(b, 90);
    jpg.resize(jpg.size() / 2);
    engine::write_file_atomic(train + "mountain/planted_truncated.jpg",
                              {std::span<const uint8_t>(jpg)});
    engine::write_file_atomic(test + "sea/planted_text.jpg", std::string("not an image\n"));
    return p;
  }();
  return p;
}

json read_report(const std::string& dir) {
  std::string js = slurp(dir + "/data/report.js");
  const std::string head = "window.EXPLORE = ";
  EXPECT_EQ(js.rfind(head, 0), 0u);
  return json::parse(js.substr(head.size(), js.rfind(';') - head.size()));
}

int64_t index_of(const json& r, const std::string& split, const std::string& rel) {
  int s = -1;
  for (size_t k = 0; k < r["splits"].size(); ++k) {
    if (r["splits"][k]["name"] == split) s = int(k);
  }
  const auto& paths = r["images"]["path"];
  for (size_t i = 0; i < paths.size(); ++i) {
    if (r["images"]["split"][i] == s && paths[i] == rel) return int64_t(i);
  }
  ADD_FAILURE() << "no image " << split << "/" << rel;
  return 0;
}

bool has_flag(const json& r, int64_t i, const std::string& flag) {
  const auto& names = r["flag_names"];
  const auto it = std::find(names.begin(), names.end(), flag);
  EXPECT_NE(it, names.end()) << flag;
  const int bit = int(it - names.begin());
  return (r["images"]["flags"][size_t(i)].get<uint32_t>() >> bit) & 1u;
}

TEST(Explore, FindsEveryPlantedCaseWithoutACheckpoint) {
  const Planted& p = planted();
  TempDir d;
  ToolRun run1 = run("explore", {"--data", p.root, "--out", d / "report"});
  ASSERT_EQ(run1.rc, 0) << run1.out << run1.err;
  EXPECT_NE(run1.out.find("report: " + fs::absolute(d / "report").string() + "/index.html"),
            std::string::npos)
      << run1.out;
  for (const char* f : {"index.html", "explore.js", "explore.css", "run.js", "data/report.js",
                        "thumbs/sheet-0000.jpg"}) {
    EXPECT_TRUE(fs::exists(d / ("report/" + std::string(f)))) << f;
  }
  json r = read_report(d / "report");
  ASSERT_EQ(r["splits"].size(), 3u);
  // 600 + 6 planted in train (the truncated one is bad), 180 + 1 in test (+1 bad), 40 + 1.
  EXPECT_EQ(r["splits"][0]["name"], "train");
  EXPECT_EQ(r["splits"][0]["images"], 606);
  EXPECT_EQ(r["splits"][1]["images"], 181);
  EXPECT_EQ(r["splits"][2]["images"], 41);
  EXPECT_EQ(r["splits"][2]["labelled"], false);
  EXPECT_EQ(r["images"]["path"].size(), 828u);
  ASSERT_EQ(r["splits"][0]["bad"].size(), 1u);
  EXPECT_NE(r["splits"][0]["bad"][0]["path"].get<std::string>().find("planted_truncated.jpg"),
            std::string::npos);
  EXPECT_NE(r["splits"][0]["bad"][0]["reason"].get<std::string>().find("truncated"),
            std::string::npos);
  ASSERT_EQ(r["splits"][1]["bad"].size(), 1u);
  EXPECT_NE(r["splits"][1]["bad"][0]["path"].get<std::string>().find("planted_text.jpg"),
            std::string::npos);

  const auto& near = r["images"]["near"];
  auto same_near = [&](int64_t i, int64_t j) {
    return near[size_t(i)].get<int>() >= 0 && near[size_t(i)] == near[size_t(j)];
  };
  auto train_img = [&](const std::string& rel) { return index_of(r, "train", rel); };
  const int64_t q60 = index_of(r, "test", "forest/planted_q60.jpg");
  EXPECT_TRUE(same_near(train_img("forest/" + p.forest[0]), q60));
  EXPECT_TRUE(has_flag(r, q60, "leakage"));
  EXPECT_TRUE(has_flag(r, train_img("forest/" + p.forest[0]), "leakage"));
  EXPECT_TRUE(
      same_near(train_img("forest/" + p.forest[1]), train_img("forest/planted_rescaled.jpg")));
  EXPECT_TRUE(
      same_near(train_img("forest/" + p.forest[2]), train_img("forest/planted_bright.jpg")));
  const int64_t exact = index_of(r, "unlabelled", "planted_exact.jpg");
  const int64_t orig3 = train_img("forest/" + p.forest[3]);
  EXPECT_TRUE(same_near(orig3, exact));
  EXPECT_GE(r["images"]["exact"][size_t(exact)].get<int>(), 0);
  EXPECT_EQ(r["images"]["exact"][size_t(exact)], r["images"]["exact"][size_t(orig3)]);
  EXPECT_TRUE(has_flag(r, exact, "exact_duplicate"));
  EXPECT_TRUE(has_flag(r, exact, "unlabelled_duplicate"));
  EXPECT_FALSE(has_flag(r, train_img("forest/planted_rescaled.jpg"), "leakage"));
  EXPECT_EQ(r["duplicates"]["pairs"]["across"]["train/test"].get<int>() >= 1, true);

  // Unrelated images: pairs found beyond the planted ones, over all pairs of distinct originals.
  int64_t planted_pairs = 4, pairs = 0;
  for (const auto& g : r["duplicates"]["near"]) pairs += int64_t(g.size() * (g.size() - 1) / 2);
  const double n = 828;
  EXPECT_LT(double(pairs - planted_pairs), 0.001 * n * (n - 1) / 2) << r["duplicates"].dump();

  EXPECT_TRUE(has_flag(r, train_img("sea/planted_black.jpg"), "dark"));
  EXPECT_TRUE(has_flag(r, train_img("sea/planted_grey.jpg"), "low_information"));
  EXPECT_TRUE(has_flag(r, train_img("sea/planted_grey.jpg"), "grayscale"));
  EXPECT_TRUE(has_flag(r, train_img("street/planted_blurred.jpg"), "blurry"));
  EXPECT_TRUE(has_flag(r, train_img("glacier/planted_odd.jpg"), "odd_size"));
  EXPECT_FALSE(has_flag(r, train_img("forest/" + p.forest[4]), "odd_size"));
  ASSERT_GE(r["sizes"].size(), 2u);
  EXPECT_EQ(r["sizes"][0], json({{"w", 150}, {"h", 150}, {"count", 827}}));
  EXPECT_EQ(r["sizes"][1], json({{"w", 120}, {"h", 150}, {"count", 1}}));
  EXPECT_EQ(r["embedding"]["source"], "color_histogram");
  EXPECT_EQ(r["checkpoint"], nullptr);
  EXPECT_FALSE(r["images"].contains("pred"));

  // Same inputs, same data files, byte for byte; the old report is replaced only with --overwrite.
  ToolRun refused = run("explore", {"--data", p.root, "--out", d / "report"});
  EXPECT_EQ(refused.rc, 1);
  EXPECT_NE(refused.err.find("exists: give --overwrite"), std::string::npos) << refused.err;
  const std::string before = slurp(d / "report/data/report.js");
  const std::string sheet = slurp(d / "report/thumbs/sheet-0000.jpg");
  ToolRun run2 = run("explore", {"--data", p.root, "--out", d / "report", "--overwrite"});
  ASSERT_EQ(run2.rc, 0) << run2.err;
  EXPECT_TRUE(slurp(d / "report/data/report.js") == before);
  EXPECT_TRUE(slurp(d / "report/thumbs/sheet-0000.jpg") == sheet);
}

// A small set, and a quarter-width checkpoint trained on it for a few epochs (on first use).
struct SmallRun {
  std::string data, checkpoint;
};
const SmallRun& small_run() {
  static TempDir dir;
  static SmallRun r = [] {
    SmallRun r{small_dataset(), dir.str() + "/run/best.safetensors"};
    ToolRun t = run(
        "train", {"--train-dir", r.data + "/seg_train", "--test-dir", r.data + "/seg_test", "--out",
                  dir.str() + "/run", "--epochs", "3", "--width", "0.25", "--image-size", "32",
                  "--lr", "0.0003", "--threads", "2", "--no-plot", "--seed", "5"});
    EXPECT_EQ(t.rc, 0) << t.out << t.err;
    return r;
  }();
  return r;
}

TEST(Explore, CheckpointNumbersEqualEvaluateAndRerunsAreByteIdentical) {
  const SmallRun& s = small_run();
  TempDir d;
  ToolRun x = run("explore", {"--data", s.data, "--checkpoint", s.checkpoint, "--out", d / "r"});
  ASSERT_EQ(x.rc, 0) << x.out << x.err;
  ToolRun e = run("evaluate", {"--checkpoint", s.checkpoint, "--data", s.data + "/seg_test",
                               "--json", d / "eval.json"});
  ASSERT_EQ(e.rc, 0) << e.err;
  json ev = json::parse(slurp(d / "eval.json"));
  json r = read_report(d / "r");
  const json& mine = r["evaluation"]["test"];
  EXPECT_EQ(mine["accuracy"], ev["accuracy"]);
  EXPECT_EQ(mine["samples"], ev["samples"]);
  EXPECT_EQ(mine["confusion_matrix"], ev["confusion_matrix"]);
  EXPECT_EQ(mine["per_class"], ev["per_class"]);
  EXPECT_EQ(mine["classes"], ev["classes"]);
  EXPECT_NEAR(mine["loss"].get<double>(), ev["loss"].get<double>(), 1e-5);
  EXPECT_GE(mine["ece"].get<double>(), 0.0);
  EXPECT_TRUE(r["evaluation"].contains("train"));
  EXPECT_FALSE(r["evaluation"].contains("unlabelled"));
  // Predicted counts per split agree with the pred column, which agrees with the probabilities.
  const auto& img = r["images"];
  const size_t n = img["path"].size(), nc = r["classes"].size();
  ASSERT_EQ(img["prob"].size(), n * nc);
  std::map<std::string, std::vector<int64_t>> counts;
  for (const auto& sp : r["splits"]) counts[sp["name"]] = std::vector<int64_t>(nc, 0);
  for (size_t i = 0; i < n; ++i) {
    const int pred = img["pred"][i];
    counts[r["splits"][img["split"][i].get<size_t>()]["name"]][size_t(pred)]++;
    for (size_t k = 0; k < nc; ++k) {
      EXPECT_LE(img["prob"][i * nc + k].get<double>(),
                img["prob"][i * nc + size_t(pred)].get<double>());
    }
    // Mistakenness > 0.5 exactly when the prediction disagrees with a label.
    if (img["label"][i].get<int>() >= 0) {
      EXPECT_EQ(img["mistake"][i].get<double>() > 0.5, img["label"][i].get<int>() != pred) << i;
    }
  }
  for (const auto& [name, c] : counts) EXPECT_EQ(r["predicted"][name], json(c)) << name;
  EXPECT_EQ(r["embedding"]["source"], "penultimate");
  EXPECT_EQ(r["checkpoint"]["model"], "simple");
  EXPECT_EQ(r["checkpoint"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(img["emb"].size(), 2 * n);

  ToolRun again = run(
      "explore", {"--data", s.data, "--checkpoint", s.checkpoint, "--out", d / "r", "--overwrite"});
  ASSERT_EQ(again.rc, 0) << again.err;
  json r2 = read_report(d / "r");
  EXPECT_EQ(r2.dump(), r.dump());
}

TEST(Explore, BadInputIsOneClearLineAndLeavesNoHalfReport) {
  const SmallRun& s = small_run();
  TempDir d;
  auto one_line = [](const ToolRun& t, const std::string& want) {
    EXPECT_EQ(t.rc, 1) << t.out << t.err;
    EXPECT_EQ(std::count(t.err.begin(), t.err.end(), '\n'), 1) << t.err;
    EXPECT_EQ(t.err.rfind("explore: ", 0), 0u) << t.err;
    EXPECT_NE(t.err.find(want), std::string::npos) << t.err;
  };
  fs::create_directories(d / "empty/a");
  one_line(run("explore", {"--data", d / "empty", "--out", d / "r1"}), d / "empty");
  one_line(run("explore", {"--data", d / "missing", "--out", d / "r2"}), d / "missing");
  one_line(run("explore", {"--split", "test", "--out", d / "r3"}), "NAME=DIR");
  one_line(run("explore", {"--out", d / "r4"}), "--data");
  // A checkpoint whose classes are not the folders'.
  fs::create_directories(d / "two/cats");
  fs::create_directories(d / "two/dogs");
  fs::copy_file(s.data + "/seg_test/seg_test/forest/0000.jpg", d / "two/cats/a.jpg");
  fs::copy_file(s.data + "/seg_test/seg_test/sea/0000.jpg", d / "two/dogs/b.jpg");
  one_line(run("explore", {"--data", d / "two", "--checkpoint", s.checkpoint, "--out", d / "r5"}),
           "[cats, dogs]");
  one_line(run("explore",
               {"--data", d / "two", "--checkpoint", d / "nope.safetensors", "--out", d / "r6"}),
           "nope.safetensors");
  // An output path that is a file.
  engine::write_file_atomic(d / "file", std::string("x"));
  one_line(run("explore", {"--data", d / "two", "--out", d / "file", "--overwrite"}), d / "file");
  for (const auto& e : fs::directory_iterator(d.str())) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".partial-"), std::string::npos) << name;
    EXPECT_NE(name.rfind("r", 0) == 0 && name.size() == 2, true) << name;
  }
  // A folder of class folders with no Kaggle split folders is one labelled split named after it.
  ToolRun ok = run("explore", {"--data", d / "two", "--out", d / "report"});
  ASSERT_EQ(ok.rc, 0) << ok.err;
  json r = read_report(d / "report");
  ASSERT_EQ(r["splits"].size(), 1u);
  EXPECT_EQ(r["splits"][0]["name"], "two");
  EXPECT_EQ(r["classes"], json({"cats", "dogs"}));
}

// The page's tags CSV (path,split,label,tag; quoted as the page quotes) drives train --exclude.
TEST(Explore, TagsCsvDrivesTrainExclude) {
  const SmallRun s{small_dataset(), ""};
  TempDir d;
  const std::string train = s.data + "/seg_train/seg_train", test = s.data + "/seg_test/seg_test";
  engine::write_file_atomic(
      d / "tags.csv", "path,split,label,tag\n" + train + "/forest/0000.jpg,train,forest,x\n\"" +
                          train + "/sea/0001.jpg\",train,sea,x\n" + test +
                          "/street/0002.jpg,test,street,x\n" + d / "elsewhere.jpg,train,sea,x\n");
  ToolRun x =
      run("train", {"--train-dir", s.data + "/seg_train", "--test-dir", s.data + "/seg_test",
                    "--out", d / "run_x", "--epochs", "1", "--width", "0.25", "--image-size", "32",
                    "--threads", "2", "--no-plot", "--exclude", d / "tags.csv"});
  ASSERT_EQ(x.rc, 0) << x.err;
  // 12 training and 5 test images per class, less the three listed that exist.
  EXPECT_NE(x.out.find("seg_train: 70 images"), std::string::npos) << x.out;
  EXPECT_NE(x.out.find("seg_test: 29 images"), std::string::npos) << x.out;
  EXPECT_NE(x.out.find("excluded: 2 training and 1 test images of the 4 listed in"),
            std::string::npos)
      << x.out;
  ToolRun bad =
      run("train", {"--train-dir", s.data + "/seg_train", "--test-dir", s.data + "/seg_test",
                    "--out", d / "run_b", "--epochs", "1", "--exclude", d / "missing.csv"});
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("missing.csv"), std::string::npos) << bad.err;
}

}  // namespace
