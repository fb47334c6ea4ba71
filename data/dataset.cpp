// Folder scanning for ImageDataset; see dataset.h for the layout rules.
#include "data/dataset.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

namespace data {
namespace fs = std::filesystem;
namespace {

bool is_hidden(const fs::path& p) {
  std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

void require_folder(const std::string& root, const char* what) {
  std::error_code ec;
  fs::file_status st = fs::status(root, ec);
  if (ec || !fs::exists(st)) {
    throw engine::Error(std::string(what) + " '" + root + "' does not exist");
  }
  if (!fs::is_directory(st))
    throw engine::Error(std::string(what) + " '" + root + "' is not a folder");
}

// Candidate image files under dir (recursively), sorted; hidden entries and other extensions
// are counted in the report.
std::vector<std::string> list_images(const fs::path& dir, ScanReport& report) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) throw engine::Error("cannot list folder '" + dir.string() + "': " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw engine::Error("cannot list folder '" + dir.string() + "': " + ec.message());
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      ++report.hidden;
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) continue;
    if (has_image_extension(p.filename().string())) {
      out.push_back(p.string());
    } else {
      ++report.other;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Checked {
  std::string why;  // "" = usable
  ImageInfo info;
};

// Reads and checks every file, threads in parallel.
std::vector<Checked> check_files(const std::vector<std::string>& paths, const ScanOptions& opt) {
  std::vector<Checked> out(paths.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < paths.size();) {
      try {
        std::vector<uint8_t> bytes = read_file_bytes(paths[i], opt.limits);
        out[i].info = check_image(bytes.data(), bytes.size(), opt.limits);
      } catch (const ImageError& e) {
        out[i].why = e.reason();
      } catch (const std::exception& e) {  // e.g. bad_alloc on an absurd file
        out[i].why = e.what();
      }
    }
  };
  int n = std::max(1, std::min<int>(opt.threads, int(paths.size() / 64) + 1));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

// The good files as samples (label from labels, or -1); the bad ones are reported in path order,
// or in strict mode the first one throws.
std::vector<Sample> filter_good(const std::vector<std::string>& paths,
                                const std::vector<int>& labels, const ScanOptions& opt,
                                ScanReport& report) {
  std::vector<Checked> checked = check_files(paths, opt);
  std::vector<Sample> good;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& why = checked[i].why;
    if (why.empty()) {
      good.push_back({paths[i], labels.empty() ? -1 : labels[i], checked[i].info.width,
                      checked[i].info.height});
      continue;
    }
    if (opt.strict)
      throw ImageError(paths[i], why + " (strict mode: stopping at the first bad image)");
    ++report.bad;
    report.bad_files.push_back(paths[i] + ": " + why);
    std::string line = "warning: skipping " + paths[i] + ": " + why;
    if (opt.warn) {
      opt.warn(line);
    } else {
      std::cerr << line << "\n";
    }
  }
  return good;
}

}  // namespace

bool has_image_extension(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "bmp";
}

std::string resolve_nested_root(const std::string& root) {
  fs::path p(root);
  std::string base = p.lexically_normal().filename().string();
  if (base.empty()) base = p.lexically_normal().parent_path().filename().string();
  std::error_code ec;
  std::vector<fs::path> visible;
  for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_hidden(it->path())) visible.push_back(it->path());
  }
  if (visible.size() == 1 && visible[0].filename() == base && fs::is_directory(visible[0], ec)) {
    return visible[0].string();
  }
  return root;
}

std::string ScanReport::summary() const {
  std::string s = std::to_string(images) + " images";
  std::vector<std::string> parts;
  if (bad) parts.push_back("skipped " + std::to_string(bad) + " bad file" + (bad == 1 ? "" : "s"));
  if (hidden || other) {
    parts.push_back("ignored " + std::to_string(hidden) + " hidden and " + std::to_string(other) +
                    " non-image file" + (hidden + other == 1 ? "" : "s"));
  }
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "; ") + parts[i];
  return s;
}

ImageDataset ImageDataset::folder(const std::string& root_arg, const ScanOptions& opt) {
  require_folder(root_arg, "data folder");
  ImageDataset ds;
  const std::string root = resolve_nested_root(root_arg);
  ds.report_.root = root;
  std::error_code ec;
  std::vector<fs::path> class_dirs;
  for (fs::directory_iterator it(root, ec), end; it != end; it.increment(ec)) {
    if (ec) break;
    if (is_hidden(it->path())) {
      ++ds.report_.hidden;
    } else if (it->is_directory(ec)) {
      class_dirs.push_back(it->path());
    } else {
      ++ds.report_.other;  // files beside the class folders belong to no class
    }
  }
  if (ec) throw engine::Error("cannot list folder '" + root + "': " + ec.message());
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty()) {
    throw engine::Error("data folder '" + root +
                        "' has no class folders: expected one sub-folder of images per class");
  }
  {
    std::set<std::string> names;
    for (auto& d : class_dirs) names.insert(d.filename().string());
    if (names.count("seg_train") && names.count("seg_test")) {
      throw engine::Error("data folder '" + root +
                          "' is the Kaggle download's top folder: use its seg_train folder for "
                          "training and seg_test for testing");
    }
  }
  // All files of all classes are checked together, so the threads stay busy.
  std::vector<std::string> paths;
  std::vector<int> labels;
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    for (std::string& p : list_images(class_dirs[c], ds.report_)) {
      paths.push_back(std::move(p));
      labels.push_back(int(c));
    }
  }
  std::vector<int64_t> per_class(class_dirs.size(), 0);
  ds.samples_ = filter_good(paths, labels, opt, ds.report_);
  for (const Sample& smp : ds.samples_) ++per_class[smp.label];
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    ds.classes_.push_back(class_dirs[c].filename().string());
    if (per_class[c] == 0) {
      throw engine::Error("class folder '" + class_dirs[c].string() + "' has no usable images");
    }
  }
  ds.report_.images = ds.size();
  return ds;
}

ImageDataset ImageDataset::unlabelled(const std::string& root_arg, const ScanOptions& opt) {
  ImageDataset ds;
  std::error_code ec;
  fs::file_status st = fs::status(root_arg, ec);
  if (ec || !fs::exists(st)) throw engine::Error("image path '" + root_arg + "' does not exist");
  std::vector<std::string> paths;
  if (fs::is_directory(st)) {
    std::string root = resolve_nested_root(root_arg);
    ds.report_.root = root;
    paths = list_images(root, ds.report_);
  } else {
    ds.report_.root = root_arg;
    paths.push_back(root_arg);  // named explicitly: taken whatever its extension
  }
  ds.samples_ = filter_good(paths, {}, opt, ds.report_);
  if (ds.samples_.empty()) {
    throw engine::Error(
        "image path '" + ds.report_.root + "' has no usable images" +
        (ds.report_.bad ? " (" + std::to_string(ds.report_.bad) + " bad files)" : ""));
  }
  ds.report_.images = ds.size();
  return ds;
}

std::string absolute_path(const std::string& path) {
  return fs::absolute(fs::path(path)).lexically_normal().generic_string();
}

ImageDataset ImageDataset::without(const std::unordered_set<std::string>& paths,
                                   int64_t* removed) const {
  ImageDataset d = *this;
  d.samples_.clear();
  for (const Sample& s : samples_) {
    if (!paths.count(absolute_path(s.path))) d.samples_.push_back(s);
  }
  const int64_t n = int64_t(samples_.size() - d.samples_.size());
  d.report_.images -= n;
  if (removed) *removed = n;
  return d;
}

std::vector<int64_t> ImageDataset::class_counts() const {
  std::vector<int64_t> n(classes_.size(), 0);
  for (const Sample& s : samples_) {
    if (s.label >= 0) ++n[s.label];
  }
  return n;
}

void check_same_classes(const ImageDataset& train, const ImageDataset& test) {
  if (train.classes() == test.classes()) return;
  std::set<std::string> a(train.classes().begin(), train.classes().end());
  std::set<std::string> b(test.classes().begin(), test.classes().end());
  std::string only_train, only_test;
  for (auto& c : a) {
    if (!b.count(c)) only_train += (only_train.empty() ? "" : ", ") + c;
  }
  for (auto& c : b) {
    if (!a.count(c)) only_test += (only_test.empty() ? "" : ", ") + c;
  }
  std::string msg = "the training folder '" + train.report().root + "' and the test folder '" +
                    test.report().root + "' have different classes:";
  if (!only_train.empty()) msg += " only in training: " + only_train + ";";
  if (!only_test.empty()) msg += " only in test: " + only_test + ";";
  msg.pop_back();
  throw engine::Error(msg);
}

}  // namespace data
