// Folder layout discovery, bad files met during a scan, samplers and the threaded loader:
// determinism across thread counts, the cache, and files that break after the scan.
#include <unistd.h>

#include <fstream>
#include <map>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/synthetic.h"
#include "engine/file_io.h"
#include "testing.h"

namespace {

namespace fs = std::filesystem;
using data::ImageDataset;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("engine_loader_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                               std::streamsize(bytes.size()));
}
void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}
std::vector<uint8_t> small_jpeg(int cls, uint64_t seed, int size = 24) {
  return data::encode_jpeg(data::draw_scene(cls, seed, size), 90);
}

// Collects warnings instead of printing them.
struct Warnings {
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& l) { lines.push_back(l); };
  }
};

// A small synthetic dataset in the Kaggle layout, shared by the tests of this file.
const std::string& synthetic_root() {
  static TempDir dir;
  static const std::string root = dir.str();
  static bool made = [] {
    data::SyntheticOptions o;
    o.out_dir = dir.str();
    o.train_per_class = 5;
    o.test_per_class = 2;
    o.pred_count = 4;
    o.size = 40;
    o.seed = 3;
    data::make_synthetic_dataset(o);
    return true;
  }();
  (void)made;
  return root;
}

TEST(Dataset, KaggleLayoutAtEitherLevel) {
  const std::string root = synthetic_root();
  ImageDataset outer = ImageDataset::folder(root + "/seg_train");
  ImageDataset inner = ImageDataset::folder(root + "/seg_train/seg_train");
  EXPECT_EQ(outer.classes(), data::kSceneClasses);
  EXPECT_EQ(inner.classes(), data::kSceneClasses);
  EXPECT_EQ(outer.size(), 30);
  EXPECT_EQ(outer.report().root, root + "/seg_train/seg_train");
  for (int64_t c : outer.class_counts()) EXPECT_EQ(c, 5);
  // Samples are in class order, then path order; labels index classes().
  for (int64_t i = 1; i < outer.size(); ++i) {
    const auto& a = outer.samples()[i - 1];
    const auto& b = outer.samples()[i];
    EXPECT_TRUE(a.label < b.label || (a.label == b.label && a.path < b.path));
  }
  ImageDataset test = ImageDataset::folder(root + "/seg_test");
  EXPECT_NO_THROW(data::check_same_classes(outer, test));
  // The unlabelled prediction folder, at both levels.
  EXPECT_EQ(ImageDataset::unlabelled(root + "/seg_pred").size(), 4);
  EXPECT_EQ(ImageDataset::unlabelled(root + "/seg_pred/seg_pred").size(), 4);
  EXPECT_FALSE(ImageDataset::unlabelled(root + "/seg_pred").labelled());
  // The Kaggle top folder itself is recognised and refused with directions.
  try {
    ImageDataset::folder(root);
    ADD_FAILURE() << "the top folder was accepted as a dataset";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("seg_train folder for training"), std::string::npos);
  }
}

TEST(Dataset, ExtensionsHiddenAndOtherFiles) {
  TempDir d;
  write_bytes(d / "cats/a.JPG", small_jpeg(0, 1));
  write_bytes(d / "cats/b.Jpeg", small_jpeg(0, 2));
  write_bytes(d / "cats/nested/c.jpg", small_jpeg(0, 3));
  write_bytes(d / "cats/.hidden.jpg", small_jpeg(0, 4));
  write_bytes(d / "cats/.thumbs/d.jpg", small_jpeg(0, 5));
  write_text(d / "cats/notes.txt", "not an image");
  write_bytes(d / "dogs/x.png", data::encode_png(data::draw_scene(1, 1, 16)));
  write_text(d / "README.md", "a file beside the class folders");
  Warnings w;
  data::ScanOptions opt;
  opt.warn = w.sink();
  ImageDataset ds = ImageDataset::folder(d.str(), opt);
  EXPECT_EQ(ds.classes(), (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_EQ(ds.size(), 4);
  EXPECT_EQ(ds.report().hidden, 2);  // .hidden.jpg and the .thumbs folder
  EXPECT_EQ(ds.report().other, 2);   // notes.txt and README.md
  EXPECT_EQ(ds.report().summary(), "4 images; ignored 2 hidden and 2 non-image files");
  EXPECT_TRUE(w.lines.empty());
  EXPECT_EQ(ds.samples()[0].width, 24);
}

TEST(Dataset, MismatchedClassesNameTheDifference) {
  TempDir d;
  for (auto cls : {"buildings", "forest", "sea"}) write_bytes(d / ("train/" + std::string(cls) + "/1.jpg"), small_jpeg(0, 1));
  for (auto cls : {"buildings", "forest", "street"}) write_bytes(d / ("test/" + std::string(cls) + "/1.jpg"), small_jpeg(0, 1));
  ImageDataset train = ImageDataset::folder(d / "train"), test = ImageDataset::folder(d / "test");
  try {
    data::check_same_classes(train, test);
    ADD_FAILURE() << "different classes accepted";
  } catch (const engine::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("only in training: sea"), std::string::npos) << m;
    EXPECT_NE(m.find("only in test: street"), std::string::npos) << m;
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const engine::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Dataset, MissingEmptyAndImagelessFoldersAreErrors) {
  TempDir d;
  EXPECT_NE(error_of([&] { ImageDataset::folder(d / "nope"); }).find(d / "nope' does not exist"),
            std::string::npos);
  write_text(d / "file.txt", "x");
  EXPECT_NE(error_of([&] { ImageDataset::folder(d / "file.txt"); }).find("is not a folder"),
            std::string::npos);
  fs::create_directories(d / "noclasses");
  EXPECT_NE(error_of([&] { ImageDataset::folder(d / "noclasses"); }).find("has no class folders"),
            std::string::npos);
  write_bytes(d / "ds/a/1.jpg", small_jpeg(0, 1));
  fs::create_directories(d / "ds/b");
  EXPECT_NE(error_of([&] { ImageDataset::folder(d / "ds"); })
                .find("class folder '" + (d / "ds/b") + "' has no usable images"),
            std::string::npos);
  fs::create_directories(d / "pred");
  write_text(d / "pred/notes.txt", "x");
  EXPECT_NE(error_of([&] { ImageDataset::unlabelled(d / "pred"); }).find("has no usable images"),
            std::string::npos);
}

// A folder with one file of every broken kind: each is skipped with one warning naming it, the
// scan reports the count, and strict mode stops at the first.
TEST(Dataset, BadFilesAreSkippedWithOneWarningEach) {
  TempDir d;
  std::vector<uint8_t> good = small_jpeg(2, 9, 40);
  std::vector<uint8_t> png = data::encode_png(data::draw_scene(2, 9, 40));
  write_bytes(d / "c/00_good.jpg", good);
  write_bytes(d / "c/01_zero.jpg", {});
  write_bytes(d / "c/02_truncated.jpg", std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2));
  write_bytes(d / "c/03_truncated.png", std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2));
  write_text(d / "c/04_text.jpg", "hello, I am text\n");
  std::vector<uint8_t> bad_crc = png;
  bad_crc[png.size() / 2] ^= 1;
  write_bytes(d / "c/05_badcrc.png", bad_crc);
  std::vector<uint8_t> huge = png;  // IHDR claims 100000 x 100000 (CRC now wrong too)
  huge[16] = 0, huge[17] = 1, huge[18] = 0x86, huge[19] = 0xA0;
  huge[20] = 0, huge[21] = 1, huge[22] = 0x86, huge[23] = 0xA0;
  write_bytes(d / "c/06_huge.png", huge);
  fs::create_symlink(d / "gone.jpg", d / "c/07_dangling.jpg");
  ASSERT_EQ(mkfifo((d / "c/08_fifo.jpg").c_str(), 0600), 0);
  write_bytes(d / "c/09_tiny.png", data::encode_png(data::Image(1, 1)));
  Warnings w;
  data::ScanOptions opt;
  opt.warn = w.sink();
  opt.threads = 2;
  ImageDataset ds = ImageDataset::folder(d.str(), opt);
  EXPECT_EQ(ds.size(), 2);  // the good JPEG and the 1x1 PNG
  EXPECT_EQ(ds.report().bad, 8);
  ASSERT_EQ(w.lines.size(), 8u);
  const char* expected[] = {"01_zero.jpg: empty file", "02_truncated.jpg: truncated JPEG",
                            "03_truncated.png: truncated PNG", "04_text.jpg: not an image",
                            "05_badcrc.png: corrupt PNG: bad CRC", "06_huge.png: corrupt PNG: bad CRC",
                            "07_dangling.jpg: cannot read", "08_fifo.jpg: not a regular file"};
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_NE(w.lines[i].find(expected[i]), std::string::npos) << w.lines[i];
    EXPECT_EQ(w.lines[i].rfind("warning: skipping " + d.str(), 0), 0u) << w.lines[i];
  }
  EXPECT_EQ(ds.report().summary(), "2 images; skipped 8 bad files");
  // Strict: the first bad file (in path order) is the error.
  opt.strict = true;
  std::string err = error_of([&] { ImageDataset::folder(d.str(), opt); });
  EXPECT_NE(err.find("01_zero.jpg: empty file"), std::string::npos) << err;
  EXPECT_NE(err.find("strict"), std::string::npos) << err;
}

// ---- samplers ----

TEST(Sampler, ShuffleIsAPermutationFixedBySeedAndEpoch) {
  auto a = data::shuffled_order(1000, 7, 0), b = data::shuffled_order(1000, 7, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, data::shuffled_order(1000, 7, 1));
  EXPECT_NE(a, data::shuffled_order(1000, 8, 0));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, data::sequential_order(1000));
}

TEST(Sampler, BalancedDrawsEveryClassEquallyOften) {
  // 1000 / 100 / 10 samples: inverse-frequency weights make each class a third of the draws.
  std::vector<int> labels;
  for (int c = 0, n = 1000; c < 3; ++c, n /= 10) labels.insert(labels.end(), n, c);
  std::vector<int64_t> count(3, 0);
  const int epochs = 20;
  for (int e = 0; e < epochs; ++e) {
    auto order = data::balanced_order(labels, 11, e);
    ASSERT_EQ(order.size(), labels.size());
    for (int64_t i : order) ++count[labels[i]];
  }
  const double total = double(labels.size()) * epochs;  // 22200 draws
  for (int c = 0; c < 3; ++c) {
    // Binomial(22200, 1/3): sd 70 draws, so 2% (444) is more than 6 sd.
    EXPECT_NEAR(count[c] / total, 1.0 / 3, 0.02) << "class " << c;
  }
  EXPECT_EQ(data::balanced_order(labels, 11, 3), data::balanced_order(labels, 11, 3));
  auto w = data::inverse_frequency_weights(labels);
  EXPECT_DOUBLE_EQ(w.front(), 1.0 / 1000);
  EXPECT_DOUBLE_EQ(w.back(), 1.0 / 10);
}

// ---- loader ----

struct EpochData {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int64_t>> labels, indices;
};

EpochData run_epoch(data::DataLoader& loader, int64_t epoch) {
  EpochData out;
  loader.start_epoch(epoch);
  data::Batch b;
  while (loader.next(b)) {
    out.images.push_back(b.images.to_vector());
    out.labels.push_back(b.labels.to_vector_i64());
    out.indices.push_back(b.indices);
    EXPECT_EQ(b.images.size(0), b.size());
    EXPECT_EQ(b.labels.size(0), b.size());
  }
  return out;
}

data::LoaderOptions augmenting(int threads) {
  data::LoaderOptions o;
  o.batch_size = 4;
  o.threads = threads;
  o.seed = 42;
  o.transform.image_size = 16;
  o.transform.augment = true;
  o.prefetch = 2;
  return o;
}

TEST(Loader, BatchesDependOnTheSeedNotTheThreads) {
  ImageDataset ds = ImageDataset::folder(synthetic_root() + "/seg_train");
  data::DataLoader reference(ds, augmenting(0));
  EpochData e0 = run_epoch(reference, 0), e1 = run_epoch(reference, 1);
  EXPECT_EQ(e0.images.size(), 8u);  // 30 samples in batches of 4: 7 full and one of 2
  EXPECT_EQ(e0.indices.back().size(), 2u);
  EXPECT_NE(e0.indices, e1.indices);  // a new shuffle each epoch
  EXPECT_NE(e0.images, e1.images);
  for (int threads : {1, 2, 4}) {
    SCOPED_TRACE(threads);
    data::DataLoader loader(ds, augmenting(threads));
    // Epochs out of order, as a resumed run starts at its epoch.
    EpochData b1 = run_epoch(loader, 1), b0 = run_epoch(loader, 0);
    EXPECT_EQ(b0.indices, e0.indices);
    EXPECT_EQ(b0.labels, e0.labels);
    EXPECT_TRUE(b0.images == e0.images) << "epoch 0 pixels differ";
    EXPECT_TRUE(b1.images == e1.images) << "epoch 1 pixels differ";
  }
  // Starting an epoch part-way gives the rest of the same batches (a resumed run).
  {
    data::DataLoader loader(ds, augmenting(2));
    loader.start_epoch(1, 5);
    data::Batch b;
    for (size_t k = 5; k < e1.indices.size(); ++k) {
      ASSERT_TRUE(loader.next(b));
      EXPECT_EQ(b.number, int64_t(k));
      EXPECT_EQ(b.indices, e1.indices[k]);
      EXPECT_TRUE(b.images.to_vector() == e1.images[k]);
    }
    EXPECT_FALSE(loader.next(b));
  }
  // Labels follow the dataset.
  for (size_t k = 0; k < e0.indices.size(); ++k) {
    for (size_t j = 0; j < e0.indices[k].size(); ++j) {
      EXPECT_EQ(e0.labels[k][j], ds.samples()[e0.indices[k][j]].label);
    }
  }
}

TEST(Loader, SequentialWithoutAugmentationIsThePlainTransform) {
  ImageDataset ds = ImageDataset::folder(synthetic_root() + "/seg_test");
  data::LoaderOptions o;
  o.order = data::SampleOrder::Sequential;
  o.batch_size = 5;
  o.transform.image_size = 20;
  data::DataLoader loader(ds, o);
  EpochData e = run_epoch(loader, 0);
  ASSERT_EQ(e.indices.size(), 3u);  // 12 samples: 5, 5, 2
  EXPECT_EQ(e.indices[0], (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // Sample 7 by hand: decode, resize, ToTensor.
  data::Image img = data::resize_bilinear(data::read_image(ds.samples()[7].path), 20, 20);
  std::vector<float> expect(3 * 20 * 20);
  data::to_chw_float(img, expect.data());
  std::vector<float> got(e.images[1].begin() + 2 * 1200, e.images[1].begin() + 3 * 1200);
  EXPECT_EQ(got, expect);
  // drop_last drops the partial batch.
  o.drop_last = true;
  data::DataLoader dropping(ds, o);
  EXPECT_EQ(dropping.batches_per_epoch(), 2);
  EXPECT_EQ(run_epoch(dropping, 0).indices.size(), 2u);
}

TEST(Loader, CacheServesLaterEpochsWithoutDecoding) {
  ImageDataset ds = ImageDataset::folder(synthetic_root() + "/seg_train");
  data::LoaderOptions o = augmenting(2);
  o.transform.augment = false;
  data::DataLoader loader(ds, o);
  EpochData first = run_epoch(loader, 0);
  EXPECT_EQ(loader.stats().decoded, 30);
  EXPECT_EQ(loader.stats().cached_images, 30);
  EXPECT_EQ(loader.stats().cache_bytes, 30 * 16 * 16 * 3);
  EpochData again = run_epoch(loader, 0);
  EXPECT_EQ(loader.stats().decoded, 30);  // no decoding in the second epoch
  EXPECT_EQ(loader.stats().cache_hits, 30);
  EXPECT_TRUE(first.images == again.images);
  EXPECT_NE(loader.cache_message().find("30 images"), std::string::npos);

  // A cap below the dataset: a message says so, part is cached, the rest decoded each time.
  Warnings w;
  o.cache_bytes = 10 * 16 * 16 * 3;
  o.log = w.sink();
  data::DataLoader capped(ds, o);
  ASSERT_EQ(w.lines.size(), 1u);
  EXPECT_NE(w.lines[0].find("above the cap"), std::string::npos) << w.lines[0];
  EpochData c0 = run_epoch(capped, 0);
  EXPECT_EQ(capped.stats().cached_images, 10);
  EpochData c1 = run_epoch(capped, 0);
  EXPECT_EQ(capped.stats().decoded, 30 + 20);
  EXPECT_TRUE(c1.images == first.images);
  // No cache at all.
  o.cache_bytes = 0;
  data::DataLoader uncached(ds, o);
  run_epoch(uncached, 0);
  run_epoch(uncached, 1);
  EXPECT_EQ(uncached.stats().decoded, 60);
  EXPECT_GT(uncached.stats().decode_seconds, 0.0);
}

// stop_caching (train's automatic cache on the CPU, when decoding is cheap): the images cached
// before it are still served, no other is added, and the batches are the same.
TEST(Loader, StopCachingKeepsWhatIsCachedAndAddsNothing) {
  ImageDataset ds = ImageDataset::folder(synthetic_root() + "/seg_train");
  data::LoaderOptions o = augmenting(2);
  o.transform.augment = false;
  o.order = data::SampleOrder::Sequential;
  data::DataLoader reference(ds, o);
  const EpochData want = run_epoch(reference, 0);

  data::DataLoader loader(ds, o);
  loader.start_epoch(0);
  data::Batch b;
  ASSERT_TRUE(loader.next(b));  // batch 0: samples 0-3, cached before it was handed out
  ASSERT_GE(loader.stats().cached_images, 4);
  loader.stop_caching();
  // Batches already assembled ahead may have cached more: at most the prefetched ones' samples.
  const int64_t cached = loader.stats().cached_images;
  EXPECT_LE(cached, 4 + int64_t(o.prefetch + o.threads) * 4);
  while (loader.next(b)) {
  }
  EXPECT_EQ(loader.stats().cached_images, cached);
  const EpochData again = run_epoch(loader, 0);
  EXPECT_TRUE(again.images == want.images);
  EXPECT_EQ(loader.stats().cache_hits, cached);
  EXPECT_EQ(loader.stats().decoded, 30 + (30 - cached));
  EXPECT_EQ(loader.stats().cached_images, cached);
}

// A file that passes the scan and breaks before it is loaded (or whose pixel data stb rejects):
// its batch comes out one sample smaller, one warning names it, later epochs skip it silently.
TEST(Loader, FileBrokenAfterTheScanIsDroppedFromItsBatch) {
  TempDir d;
  for (int i = 0; i < 6; ++i) write_bytes(d / ("c/" + std::to_string(i) + ".jpg"), small_jpeg(1, i));
  ImageDataset ds = ImageDataset::folder(d.str());
  write_text(d / "c/3.jpg", "replaced by text after the scan");
  Warnings w;
  data::LoaderOptions o;
  o.order = data::SampleOrder::Sequential;
  o.batch_size = 4;
  o.threads = 2;
  o.cache_bytes = 0;
  o.transform.image_size = 8;
  o.log = w.sink();
  data::DataLoader loader(ds, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    EpochData e = run_epoch(loader, epoch);
    ASSERT_EQ(e.indices.size(), 2u);
    EXPECT_EQ(e.indices[0], (std::vector<int64_t>{0, 1, 2}));
    EXPECT_EQ(e.images[0].size(), 3u * 3 * 8 * 8);
  }
  ASSERT_EQ(w.lines.size(), 1u);
  EXPECT_NE(w.lines[0].find("3.jpg: not an image"), std::string::npos) << w.lines[0];
  EXPECT_EQ(loader.stats().skipped, 2);
  // Strict: the error reaches the consumer from the worker thread.
  o.strict = true;
  data::DataLoader strict(ds, o);
  strict.start_epoch(0);
  data::Batch b;
  std::string err = error_of([&] { while (strict.next(b)) {} });
  EXPECT_NE(err.find("3.jpg: not an image"), std::string::npos) << err;
}

TEST(Loader, BalancedOrderAndBadOptions) {
  ImageDataset ds = ImageDataset::folder(synthetic_root() + "/seg_train");
  data::LoaderOptions o = augmenting(1);
  o.order = data::SampleOrder::Balanced;
  data::DataLoader loader(ds, o);
  EpochData e = run_epoch(loader, 0);
  int64_t n = 0;
  for (auto& idx : e.indices) n += int64_t(idx.size());
  EXPECT_EQ(n, 30);
  EXPECT_EQ(e.indices, run_epoch(loader, 0).indices);
  o.batch_size = 0;
  EXPECT_NE(error_of([&] { data::DataLoader bad(ds, o); }).find("batch size 0"), std::string::npos);
  o.batch_size = 4;
  o.order = data::SampleOrder::Balanced;
  ImageDataset pred = ImageDataset::unlabelled(synthetic_root() + "/seg_pred");
  EXPECT_NE(error_of([&] { data::DataLoader bad(pred, o); }).find("labelled"), std::string::npos);
  data::DataLoader unstarted(ds, augmenting(1));
  data::Batch b;
  EXPECT_NE(error_of([&] { unstarted.next(b); }).find("start_epoch"), std::string::npos);
}

// Without a CUDA runtime, pinned batches are ordinary CPU memory and work the same.
TEST(Loader, PinnedMemoryRequestWorksWithoutCuda) {
  ImageDataset ds = ImageDataset::folder(synthetic_root() + "/seg_test");
  data::LoaderOptions o = augmenting(2);
  o.pin_memory = true;
  data::DataLoader pinned(ds, o);
  o.pin_memory = false;
  data::DataLoader plain(ds, o);
  EXPECT_TRUE(run_epoch(pinned, 0).images == run_epoch(plain, 0).images);
}

}  // namespace
