// Times the image input path on the CPU and prints one JSON line per measurement, for
// bench/decode_compare.py to set beside PIL + torchvision on the same files.
//
//   bench_decode --mode decode --files LIST.txt --size 64 --repeat 5
//       One thread. Per file: read the bytes (from the page cache after the warm-up pass),
//       decode_image, resize_bilinear to SxS, to_chw_float into one reused float buffer: what
//       Image.open(p).convert("RGB") + Resize((S, S)) + ToTensor() do. One untimed warm-up pass,
//       then R timed passes over all files; the median pass gives images/s, split into read +
//       decode and resize + to-tensor.
//   bench_decode --mode loader --data DIR --threads 2 --batch 8 --size 64 --epochs 4
//       ImageDataset over DIR (class sub-folders, or a flat folder of images) and a DataLoader
//       (shuffled, no augmentation). Drains every batch as fast as it comes, with the cache on
//       (epoch 0 decodes, later epochs hit the cache) and then with it off.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/transforms.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

const char* kUsage =
    "usage: bench_decode --mode decode --files LIST.txt [--size 64] [--repeat 5]\n"
    "       bench_decode --mode loader --data DIR [--threads 2] [--batch 8] [--size 64]\n"
    "                    [--epochs 4]\n"
    "Prints one JSON line per measurement on stdout. LIST.txt holds one image path per line.\n";

struct Args {
  std::string mode, files, data;
  int size = 64, repeat = 5, threads = 2, batch = 8, epochs = 4;
};

int to_int(const std::string& flag, const std::string& v, int lo) {
  size_t used = 0;
  int x = 0;
  try {
    x = std::stoi(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || x < lo) {
    throw engine::Error(flag + " needs an integer >= " + std::to_string(lo) + ", got '" + v + "'");
  }
  return x;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (i + 1 >= argc) throw engine::Error(k + " needs a value");
    std::string v = argv[i + 1];
    if (k == "--mode")
      a.mode = v;
    else if (k == "--files")
      a.files = v;
    else if (k == "--data")
      a.data = v;
    else if (k == "--size")
      a.size = to_int(k, v, 1);
    else if (k == "--repeat")
      a.repeat = to_int(k, v, 1);
    else if (k == "--threads")
      a.threads = to_int(k, v, 0);
    else if (k == "--batch")
      a.batch = to_int(k, v, 1);
    else if (k == "--epochs")
      a.epochs = to_int(k, v, 2);
    else
      throw engine::Error("unknown flag " + k + " (see --help)");
  }
  if (a.mode != "decode" && a.mode != "loader") {
    throw engine::Error("--mode must be decode or loader, got '" + a.mode + "'");
  }
  if (a.mode == "decode" && a.files.empty()) throw engine::Error("--mode decode needs --files");
  if (a.mode == "loader" && a.data.empty()) throw engine::Error("--mode loader needs --data");
  return a;
}

int run_decode(const Args& a) {
  std::vector<std::string> paths;
  {
    std::ifstream in(a.files);
    if (!in) throw engine::Error("cannot read file list " + a.files);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) paths.push_back(line);
    }
  }
  if (paths.empty()) throw engine::Error("file list " + a.files + " is empty");
  const int s = a.size;
  std::vector<float> tensor(size_t(3) * s * s);
  double checksum = 0, file_bytes = 0;

  // Returns (read + decode seconds, resize + to-tensor seconds) for one pass over the files.
  auto pass = [&](bool sum) {
    double t_decode = 0, t_transform = 0;
    for (const std::string& p : paths) {
      auto t0 = Clock::now();
      std::vector<uint8_t> bytes = data::read_file_bytes(p);
      data::Image img = data::decode_image(bytes.data(), bytes.size());
      auto t1 = Clock::now();
      data::to_chw_float(data::resize_bilinear(img, s, s), tensor.data());
      auto t2 = Clock::now();
      t_decode += std::chrono::duration<double>(t1 - t0).count();
      t_transform += std::chrono::duration<double>(t2 - t1).count();
      // A value read from every output, so the work cannot be optimised away and the two
      // implementations can be compared (their JPEG decoders differ by a rounding or two).
      if (sum) {
        for (float v : tensor) checksum += v;
        file_bytes += double(bytes.size());
      }
    }
    return std::pair{t_decode, t_transform};
  };

  pass(true);  // warm-up: page cache, allocator, instruction cache
  std::vector<std::pair<double, double>> passes;
  std::vector<double> totals;
  for (int r = 0; r < a.repeat; ++r) {
    auto t = pass(false);
    passes.push_back(t);
    totals.push_back(t.first + t.second);
  }
  // The split reported is that of the median pass itself, so its parts add up to the total.
  const double med = median(totals);
  auto it = std::min_element(totals.begin(), totals.end(), [&](double x, double y) {
    return std::abs(x - med) < std::abs(y - med);
  });
  const auto split = passes[size_t(it - totals.begin())];
  const double n = double(paths.size());
  std::printf(
      "{\"impl\": \"engine\", \"mode\": \"decode\", \"size\": %d, \"files\": %zu, \"repeat\": %d, "
      "\"images_per_s\": %.2f, \"pass_s\": %.6f, \"decode_s\": %.6f, \"transform_s\": %.6f, "
      "\"decode_us_per_image\": %.2f, \"transform_us_per_image\": %.2f, "
      "\"mean_file_bytes\": %.1f, \"mean_value\": %.6f}\n",
      s, paths.size(), a.repeat, n / med, med, split.first, split.second, 1e6 * split.first / n,
      1e6 * split.second / n, file_bytes / n, checksum / (n * double(tensor.size())));
  return 0;
}

int run_loader(const Args& a) {
  namespace fs = std::filesystem;
  // A folder with class sub-folders is an ImageFolder; a flat folder of images is unlabelled.
  const std::string root = data::resolve_nested_root(a.data);
  bool has_subdirs = false;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory() && e.path().filename().string().rfind('.', 0) != 0) has_subdirs = true;
  }
  data::ScanOptions scan;
  scan.threads = std::max(a.threads, 1);
  const data::ImageDataset ds = has_subdirs ? data::ImageDataset::folder(a.data, scan)
                                            : data::ImageDataset::unlabelled(a.data, scan);

  for (bool cache : {true, false}) {
    data::LoaderOptions o;
    o.batch_size = a.batch;
    o.threads = a.threads;
    o.order = data::SampleOrder::Shuffle;
    o.transform.image_size = a.size;
    o.transform.augment = false;
    o.cache_bytes = cache ? int64_t(2) << 30 : 0;
    data::DataLoader loader(ds, o);
    std::vector<double> epoch_s;
    int64_t images = 0, batches = 0;
    for (int e = 0; e < a.epochs; ++e) {
      auto t0 = Clock::now();
      loader.start_epoch(e);
      data::Batch b;
      images = batches = 0;
      while (loader.next(b)) {
        images += b.size();
        ++batches;
      }
      epoch_s.push_back(seconds_since(t0));
    }
    const data::DataLoader::Stats st = loader.stats();
    auto line = [&](const char* phase, double sec, int epochs) {
      std::printf(
          "{\"impl\": \"engine\", \"mode\": \"loader\", \"phase\": \"%s\", \"cache\": %s, "
          "\"threads\": %d, \"batch\": %d, \"size\": %d, \"images\": %lld, \"epochs\": %d, "
          "\"epoch_s\": %.6f, \"images_per_s\": %.2f, \"batches_per_s\": %.2f, "
          "\"decoded\": %lld, \"cache_hits\": %lld}\n",
          phase, cache ? "true" : "false", a.threads, a.batch, a.size,
          static_cast<long long>(images), epochs, sec, double(images) / sec, double(batches) / sec,
          static_cast<long long>(st.decoded), static_cast<long long>(st.cache_hits));
    };
    if (cache) {
      line("first_epoch", epoch_s[0], 1);
      line("cached_epochs", median({epoch_s.begin() + 1, epoch_s.end()}), a.epochs - 1);
    } else {
      line("no_cache", median(epoch_s), a.epochs);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  try {
    Args a = parse(argc, argv);
    return a.mode == "decode" ? run_decode(a) : run_loader(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decode: %s\n", e.what());
    return 1;
  }
}
