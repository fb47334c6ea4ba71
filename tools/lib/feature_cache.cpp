// Cached backbone features; see feature_cache.h.
#include "tools/lib/feature_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/autograd.h"
#include "engine/error.h"
#include "tools/lib/model_io.h"
#include "tools/lib/progress.h"
#include "tools/lib/train_config.h"

namespace app {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'E', 'N', 'G', 'F', 'E', 'A', 'T', '1'};
constexpr size_t kKeyBytes = 32;
// magic, key, samples, dim; then one presence byte per sample; then the rows.
constexpr size_t kHeader = sizeof kMagic + kKeyBytes + 2 * sizeof(int64_t);

struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
};

void pwrite_all(int fd, const void* p, size_t n, off_t at, const std::string& file) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, b, n, at);
    ENGINE_CHECK(w > 0, file, ": cannot write the feature cache: ", std::strerror(errno));
    b += w, n -= size_t(w), at += w;
  }
}

bool pread_all(int fd, void* p, size_t n, off_t at) {
  auto* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    ssize_t r = ::pread(fd, b, n, at);
    if (r <= 0) return false;
    b += r, n -= size_t(r), at += r;
  }
  return true;
}

}  // namespace

std::string feature_cache_refusal(const TrainConfig& c) {
  if (!is_transfer_model(c.model)) return "the model has no pretrained backbone";
  if (!c.feature_cache) return "--no-feature-cache";
  if (c.model != "ensemble" && !c.freeze_backbone) return "the backbone trains (no --freeze-backbone)";
  if (!c.unfreeze_from.empty()) return "--unfreeze-from trains part of the backbone";
  if (c.frozen_bn != "eval")
    return "--frozen-bn train: batch statistics make each image's features depend on its batch";
  if (c.augment) return "--augment draws new crops and flips every epoch";
  return "";
}

std::string feature_cache_key(const engine::Module& net, const std::string& head_prefix,
                              const std::string& model, const data::TransformOptions& t) {
  Fnv f;
  for (const auto& [name, tensor] : net.state_dict()) {
    if (name.rfind(head_prefix + ".", 0) == 0) continue;
    f.add(name);
    engine::Tensor host = tensor.to(engine::Device::cpu());
    f.add(host.raw_data(), host.nbytes());
  }
  f.add(model);
  const int64_t sizes[2] = {t.image_size, t.resize_size};
  f.add(sizes, sizeof sizes);
  f.add(t.mean.data(), sizeof(float) * 3);
  f.add(t.std.data(), sizeof(float) * 3);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return hex;
}

FeatureCache::FeatureCache(std::string split, int64_t samples, int64_t dim, std::string key,
                           int64_t mem_cap_bytes, std::string file)
    : split_(std::move(split)),
      key_(std::move(key)),
      file_(std::move(file)),
      samples_(samples),
      dim_(dim),
      in_memory_(samples * dim * int64_t(sizeof(float)) <= mem_cap_bytes),
      present_(size_t(samples), 0) {
  ENGINE_CHECK(key_.size() <= kKeyBytes, "feature cache key too long: ", key_);
  if (in_memory_) rows_.assign(size_t(samples * dim), 0.f);
}

FeatureCache::~FeatureCache() {
  if (fd_ >= 0) ::close(fd_);
}

bool FeatureCache::load_existing() {
  int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char head[kHeader];
  char want[kKeyBytes] = {};
  std::memcpy(want, key_.data(), key_.size());
  int64_t sd[2] = {samples_, dim_};
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const off_t expect = off_t(kHeader) + samples_ + samples_ * dim_ * off_t(sizeof(float));
  bool ok = size == expect && pread_all(fd, head, kHeader, 0) &&
            std::memcmp(head, kMagic, sizeof kMagic) == 0 &&
            std::memcmp(head + sizeof kMagic, want, kKeyBytes) == 0 &&
            std::memcmp(head + sizeof kMagic + kKeyBytes, sd, sizeof sd) == 0 &&
            pread_all(fd, present_.data(), present_.size(), off_t(kHeader));
  if (!ok) {
    ::close(fd);
    std::fill(present_.begin(), present_.end(), 0);
    return false;
  }
  for (uint8_t p : present_) stats_.loaded += p;
  if (in_memory_) {
    ok = pread_all(fd, rows_.data(), rows_.size() * sizeof(float), off_t(kHeader) + samples_);
    ::close(fd);
    return ok;
  }
  fd_ = fd;
  return true;
}

void FeatureCache::put(int64_t i, const float* row) {
  if (in_memory_) {
    std::memcpy(rows_.data() + i * dim_, row, size_t(dim_) * sizeof(float));
  } else {
    pwrite_all(fd_, row, size_t(dim_) * sizeof(float),
               off_t(kHeader) + samples_ + i * dim_ * off_t(sizeof(float)), file_);
  }
  present_[size_t(i)] = 1;
  ++stats_.computed;
}

void FeatureCache::build(data::DataLoader& loader,
                         const std::function<engine::Tensor(const engine::Tensor&)>& features,
                         engine::Device device) {
  if (!in_memory_ || fs::exists(file_)) {
    if (load_existing()) {
      std::printf("features (%s): %lld rows read from %s\n", split_.c_str(),
                  static_cast<long long>(stats_.loaded), file_.c_str());
      return;
    }
  }
  const std::string tmp = file_ + ".tmp";
  if (!in_memory_) {
    std::error_code ec;
    fs::create_directories(fs::path(file_).parent_path(), ec);
    fd_ = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ENGINE_CHECK(fd_ >= 0, tmp, ": cannot create the feature cache file: ", std::strerror(errno));
  }
  engine::autograd::NoGradGuard no_grad;
  Progress bar("features (" + split_ + ")", loader.batches_per_epoch());
  loader.start_epoch(0);
  data::Batch b;
  int64_t images = 0;
  while (loader.next(b)) {
    engine::Tensor x = device.is_cpu() ? b.images : b.images.to(device);
    engine::Tensor f = features(x).to(engine::Device::cpu());
    ENGINE_CHECK(f.dim() == 2 && f.size(0) == b.size() && f.size(1) == dim_,
                 "feature cache: the backbone gave ", engine::shape_str(f.shape()), " for ",
                 b.size(), " images, expected rows of ", dim_);
    for (int64_t j = 0; j < b.size(); ++j) put(b.indices[size_t(j)], f.data<float>() + j * dim_);
    images += b.size();
    bar.update(b.number + 1, "", images);
  }
  bar.finish();
  if (!in_memory_) {
    char head[kHeader] = {};
    std::memcpy(head, kMagic, sizeof kMagic);
    std::memcpy(head + sizeof kMagic, key_.data(), key_.size());
    const int64_t sd[2] = {samples_, dim_};
    std::memcpy(head + sizeof kMagic + kKeyBytes, sd, sizeof sd);
    pwrite_all(fd_, head, kHeader, 0, tmp);
    pwrite_all(fd_, present_.data(), present_.size(), off_t(kHeader), tmp);
    // The full size even when the last rows are missing, so a complete file has one length.
    ENGINE_CHECK(::ftruncate(fd_, off_t(kHeader) + samples_ + samples_ * dim_ * off_t(sizeof(float))) == 0,
                 tmp, ": cannot size the feature cache: ", std::strerror(errno));
    ENGINE_CHECK(::fsync(fd_) == 0, tmp, ": fsync failed: ", std::strerror(errno));
    std::error_code ec;
    fs::rename(tmp, file_, ec);
    ENGINE_CHECK(!ec, file_, ": cannot move the feature cache into place: ", ec.message());
  }
  std::printf("features (%s): %lld computed, kept %s\n", split_.c_str(),
              static_cast<long long>(stats_.computed),
              in_memory_ ? "in memory" : ("in " + file_).c_str());
}

engine::Tensor FeatureCache::gather(const std::vector<int64_t>& indices,
                                    std::vector<int64_t>* kept) {
  kept->clear();
  for (int64_t i : indices)
    if (present_[size_t(i)]) kept->push_back(i);
  engine::Tensor out = engine::Tensor::empty({int64_t(kept->size()), dim_});
  float* dst = out.data<float>();
  for (size_t j = 0; j < kept->size(); ++j) {
    const int64_t i = (*kept)[j];
    if (in_memory_) {
      std::memcpy(dst + int64_t(j) * dim_, rows_.data() + i * dim_, size_t(dim_) * sizeof(float));
    } else {
      ENGINE_CHECK(pread_all(fd_, dst + int64_t(j) * dim_, size_t(dim_) * sizeof(float),
                             off_t(kHeader) + samples_ + i * dim_ * off_t(sizeof(float))),
                   file_, ": cannot read the feature cache: ", std::strerror(errno));
    }
  }
  stats_.served += int64_t(kept->size());
  return out;
}

}  // namespace app
