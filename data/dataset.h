// Image datasets on disk: ImageFolder (one sub-folder per class, classes in sorted order, as
// torchvision's ImageFolder) and an unlabelled image list (for predict on seg_pred).
//
// Layout rules:
//   - The Kaggle download nests every split twice (seg_train/seg_train/<class>/...). Pointing at
//     either level works: a folder whose only entry is a folder of the same name is descended into.
//   - Images are found by extension, case-insensitively: .jpg .jpeg .png .bmp, in sub-folders too.
//     Hidden files and folders (a leading '.') and other extensions are ignored and counted.
//   - Every file is checked when the folder is scanned (check_image: container structure, CRCs,
//     truncation, size limits; no pixel decoding). A bad file is skipped with one warning naming
//     it and the reason, and the scan ends with a count; with strict, the first one is an error.
//   - A missing folder, a class folder with no usable image, or a dataset with no images is an
//     error naming the path.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "data/image.h"

namespace data {

struct Sample {
  std::string path;
  int label = -1;             // -1: unlabelled
  int width = 0, height = 0;  // from the header, read at scan time
};

struct ScanOptions {
  bool strict = false;  // the first bad file throws instead of being skipped
  int threads = 1;      // files are read and checked in parallel
  DecodeLimits limits;
  // Receives each warning line ("skipping <path>: <reason>"); default: stderr.
  std::function<void(const std::string&)> warn;
};

struct ScanReport {
  std::string root;                    // the folder actually used (after Kaggle nesting)
  int64_t images = 0;                  // usable
  int64_t bad = 0;                     // skipped: failed check_image or unreadable
  int64_t hidden = 0;                  // hidden files and folders ignored
  int64_t other = 0;                   // files with other extensions ignored
  std::vector<std::string> bad_files;  // "path: reason", in path order
  std::string summary() const;  // "1234 images; skipped 2 bad files, ignored 1 hidden and 3 other"
};

class ImageDataset {
 public:
  // ImageFolder: classes = the sorted sub-folder names of root.
  static ImageDataset folder(const std::string& root, const ScanOptions& opt = {});
  // Unlabelled: every image under root (or root itself when it is an image file), label -1.
  static ImageDataset unlabelled(const std::string& root, const ScanOptions& opt = {});

  const std::vector<Sample>& samples() const { return samples_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const ScanReport& report() const { return report_; }
  int64_t size() const { return int64_t(samples_.size()); }
  bool labelled() const { return !classes_.empty(); }
  // Images per class, in class order.
  std::vector<int64_t> class_counts() const;
  // The same dataset without the samples whose file is in `paths` (absolute, lexically normal:
  // as absolute_path() gives them); `removed` (optional) gets how many were left out.
  ImageDataset without(const std::unordered_set<std::string>& paths,
                       int64_t* removed = nullptr) const;

 private:
  std::vector<Sample> samples_;
  std::vector<std::string> classes_;
  ScanReport report_;
};

// Throws engine::Error naming the classes that one side has and the other lacks.
void check_same_classes(const ImageDataset& train, const ImageDataset& test);

// path made absolute and lexically normal ("a/./b/../c.jpg" -> "/cwd/a/c.jpg"), the form in
// which without() compares paths.
std::string absolute_path(const std::string& path);

// The Kaggle nesting rule on its own: root, or root/<basename(root)> when that is root's only
// non-hidden entry and a folder.
std::string resolve_nested_root(const std::string& root);
bool has_image_extension(const std::string& name);

}  // namespace data
