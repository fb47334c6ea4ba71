// The explorer's run as a short list of named steps (see explore.h): scan, measure, flag, find
// duplicates, run the model, embed, write. Each step fills columns of ExploreTable, one entry per
// image, which write_report_js turns into docs/EXPLORE.md's window.EXPLORE.
#include "tools/lib/explore.h"

#include <omp.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <span>

#include "data/dataset.h"
#include "data/image.h"
#include "data/image_analysis.h"
#include "engine/error.h"
#include "engine/file_io.h"
#include "tools/lib/embedded_files.h"
#include "tools/lib/evaluation.h"
#include "tools/lib/explore_model.h"
#include "tools/lib/model_io.h"
#include "tools/lib/progress.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace app {
namespace {

// Bits of ExploreTable::flags, in docs/EXPLORE.md's flag_names order.
enum Flag {
  kDark,
  kBright,
  kBlurry,
  kLowInformation,
  kOddSize,
  kGrayscale,
  kExactDuplicate,
  kNearDuplicate,
  kLeakage,
  kUnlabelledDuplicate,
  kLabelConflict,
  kMistakenness,
  kConfidentLearning,
  kUnreadable,
};
const char* const kFlagNames[] = {"dark",
                                  "bright",
                                  "blurry",
                                  "low_information",
                                  "odd_size",
                                  "grayscale",
                                  "exact_duplicate",
                                  "near_duplicate",
                                  "leakage",
                                  "unlabelled_duplicate",
                                  "label_conflict",
                                  "mistakenness",
                                  "confident_learning",
                                  "unreadable"};

struct Split {
  std::string name;
  data::ImageDataset ds;
  bool labelled = false;
  int64_t first = 0;  // index of its first image in the table
  json bad = json::array();
};

// One entry per image (columns), filled step by step.
struct ExploreTable {
  int64_t n = 0;
  std::vector<int> split, label;
  std::vector<std::string> path;  // relative to the split's folder
  std::vector<data::ImageProperties> props;
  std::vector<uint64_t> exact_hash, dhash, phash;
  std::vector<float> colour;  // n x colour_dim
  int64_t colour_dim = 0;
  std::vector<uint8_t> readable;
  std::vector<std::string> errors;  // why an image could not be decoded ("" when it could)
  std::vector<uint8_t> thumbs;      // n x side x side x 3
  std::vector<uint32_t> flags;
  std::vector<int> exact_group, near_group;
  // With a checkpoint.
  bool has_model = false;
  int num_classes = 0;
  std::vector<int> pred;
  std::vector<float> probs, features, mistake, self_conf, hard, margin;
  std::vector<uint8_t> cl;
  int64_t feature_dim = 0;
  std::vector<float> emb, uniq;
};

double round_to(double v, int decimals) {
  const double s = std::pow(10.0, decimals);
  const double r = std::round(v * s) / s;
  return r == 0 ? 0.0 : r;  // never "-0"
}

template <class T, class F>
json column(const std::vector<T>& v, F f) {
  json a = json::array();
  for (const auto& x : v) a.push_back(f(x));
  return a;
}
json rounded(const std::vector<float>& v, int decimals) {
  return column(v, [&](float x) { return round_to(x, decimals); });
}

std::string sha256_file(const std::string& path) {
  std::vector<uint8_t> bytes =
      data::read_file_bytes(path, data::DecodeLimits{0, 0, int64_t(1) << 40});
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ENGINE_CHECK(EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) == 1,
               "SHA-256 of '", path, "' failed");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) s += std::string{hex[md[i] >> 4], hex[md[i] & 15]};
  return s;
}

// A folder with image files directly in it (after the Kaggle nesting) is unlabelled (seg_pred);
// one whose images all sit in sub-folders is a labelled ImageFolder.
bool has_loose_images(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && data::has_image_extension(name)) return true;
  }
  return false;
}

// "path: reason" as the scan reports a bad file, split after the path (which ends in an image
// extension; the reason may itself contain ": ").
json bad_entry(const std::string& line) {
  for (size_t p = line.find(": "); p != std::string::npos; p = line.find(": ", p + 1)) {
    if (data::has_image_extension(line.substr(0, p))) {
      return json{{"path", line.substr(0, p)}, {"reason", line.substr(p + 2)}};
    }
  }
  return json{{"path", line}, {"reason", ""}};
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return "[" + s + "]";
}

std::vector<Split> scan_splits(const std::vector<ExploreSplitSpec>& specs, bool strict) {
  std::vector<Split> splits;
  std::set<std::string> names;
  int64_t first = 0;
  for (const auto& spec : specs) {
    ENGINE_CHECK(names.insert(spec.name).second, "split '", spec.name, "' is given twice");
    data::ScanOptions so;
    so.strict = strict;
    so.threads = 2;
    int64_t warned = 0;
    so.warn = [&](const std::string&) { ++warned; };  // listed in the report instead
    Split s{spec.name, {}, false, first, json::array()};
    const std::string root = data::resolve_nested_root(spec.dir);
    s.labelled = fs::is_directory(root) && !has_loose_images(root);
    s.ds = s.labelled ? data::ImageDataset::folder(spec.dir, so)
                      : data::ImageDataset::unlabelled(spec.dir, so);
    for (const auto& b : s.ds.report().bad_files) s.bad.push_back(bad_entry(b));
    std::printf("%s: %s: %s\n", spec.name.c_str(), s.ds.report().root.c_str(),
                s.ds.report().summary().c_str());
    first += s.ds.size();
    splits.push_back(std::move(s));
  }
  ENGINE_CHECK(!splits.empty(), "no splits to explore");
  const Split* ref = nullptr;
  for (const auto& s : splits) {
    if (!s.labelled) continue;
    if (ref && s.ds.classes() != ref->ds.classes()) {
      throw engine::Error("the classes of split '" + s.name + "' " + join(s.ds.classes()) +
                          " differ from those of '" + ref->name + "' " + join(ref->ds.classes()));
    }
    ref = ref ? ref : &s;
  }
  return splits;
}

std::vector<std::string> dataset_classes(const std::vector<Split>& splits) {
  for (const auto& s : splits) {
    if (s.labelled) return s.ds.classes();
  }
  return {};
}

std::string relative_path(const std::string& path, const std::string& root) {
  std::string rel = fs::path(path).lexically_relative(root).generic_string();
  return rel.empty() || rel.rfind("..", 0) == 0 ? path : rel;
}

// Step 1: decode every image once: properties, hashes, colour histogram and thumbnail. Memory is
// the thumbnails (side^2 x 3 bytes an image) and the columns; images are never kept.
void measure_images(const std::vector<Split>& splits, int side, ExploreTable& t) {
  std::vector<const data::Sample*> samples;
  for (size_t k = 0; k < splits.size(); ++k) {
    for (const auto& smp : splits[k].ds.samples()) {
      samples.push_back(&smp);
      t.split.push_back(int(k));
      t.label.push_back(smp.label);
      t.path.push_back(relative_path(smp.path, splits[k].ds.report().root));
    }
  }
  const int64_t n = t.n = int64_t(samples.size());
  t.props.resize(size_t(n));
  t.exact_hash.assign(size_t(n), 0);
  t.dhash.assign(size_t(n), 0);
  t.phash.assign(size_t(n), 0);
  t.readable.assign(size_t(n), 0);
  t.errors.assign(size_t(n), "");
  t.colour_dim = int64_t(data::color_histogram(data::Image(1, 1)).size());
  t.colour.assign(size_t(n * t.colour_dim), 0.f);
  const size_t thumb_bytes = size_t(side) * size_t(side) * 3;
  t.thumbs.assign(size_t(n) * thumb_bytes, 128);
  Progress bar("measuring images", n);
  std::atomic<int64_t> done{0};
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t i = 0; i < n; ++i) {
    const size_t u = size_t(i);
    try {
      data::Image img = data::read_image(samples[u]->path);
      t.props[u] = data::image_properties(img);
      t.exact_hash[u] = data::pixel_hash(img);
      t.dhash[u] = data::dhash64(img);
      t.phash[u] = data::phash64(img);
      std::vector<float> h = data::color_histogram(img);
      std::copy(h.begin(), h.end(), t.colour.begin() + i * t.colour_dim);
      data::Image th = data::thumbnail(img, side);
      std::copy(th.pixels.begin(), th.pixels.end(), t.thumbs.begin() + ptrdiff_t(u * thumb_bytes));
      t.readable[u] = 1;
    } catch (const std::exception& e) {
      t.errors[u] = e.what();
    }
    const int64_t d = ++done;
    if (omp_get_thread_num() == 0) bar.update(d, "", d);
  }
  bar.update(n, "", n);
  bar.finish();
}

// The property of each readable image, for percentiles.
template <class F>
std::vector<double> readable_values(const ExploreTable& t, F f) {
  std::vector<double> v;
  for (int64_t i = 0; i < t.n; ++i) {
    if (t.readable[size_t(i)]) v.push_back(f(t.props[size_t(i)]));
  }
  return v;
}

std::string fmt(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, std::fabs(v) >= 1000 ? "%.0f" : "%.4g", v);
  return buf;
}

// Step 2: property flags. An image below the 0.5th or above the 99.5th percentile of a property
// over all readable images is flagged; the page shows the rule (flag_rules) under "why".
struct PropertyDef {
  const char* name;
  double (*get)(const data::ImageProperties&);
};
const PropertyDef kProperties[] = {
    {"brightness", [](const data::ImageProperties& p) { return double(p.brightness); }},
    {"contrast", [](const data::ImageProperties& p) { return double(p.contrast); }},
    {"blur", [](const data::ImageProperties& p) { return double(p.blur); }},
    {"entropy", [](const data::ImageProperties& p) { return double(p.entropy); }},
    {"area", [](const data::ImageProperties& p) { return double(p.width) * p.height; }},
    {"aspect",
     [](const data::ImageProperties& p) { return p.height ? double(p.width) / p.height : 0.0; }},
};

json property_summary(const std::vector<double>& v, double lo, double hi) {
  const double mn = *std::min_element(v.begin(), v.end());
  const double mx = *std::max_element(v.begin(), v.end());
  std::vector<int64_t> hist(40, 0);
  for (double x : v) {
    int b = mx > mn ? int((x - mn) / (mx - mn) * 40) : 0;
    hist[size_t(std::clamp(b, 0, 39))]++;
  }
  return json{{"low", round_to(lo, 4)},
              {"high", round_to(hi, 4)},
              {"min", round_to(mn, 4)},
              {"max", round_to(mx, 4)},
              {"hist", hist}};
}

void flag_properties(ExploreTable& t, json& properties, json& rules) {
  t.flags.assign(size_t(t.n), 0);
  properties = json::object();
  rules = json::object();
  std::map<std::string, std::pair<double, double>> range;
  for (const auto& def : kProperties) {
    std::vector<double> v = readable_values(t, def.get);
    if (v.empty()) continue;
    const double lo = data::percentile(v, 0.5), hi = data::percentile(v, 99.5);
    range[def.name] = {lo, hi};
    properties[def.name] = property_summary(v, lo, hi);
  }
  if (range.empty()) return;
  auto below = [&](const char* p, const data::ImageProperties& x,
                   double (*get)(const data::ImageProperties&)) { return get(x) < range[p].first; };
  for (int64_t i = 0; i < t.n; ++i) {
    uint32_t& f = t.flags[size_t(i)];
    if (!t.readable[size_t(i)]) {
      f |= 1u << kUnreadable;
      continue;
    }
    const auto& p = t.props[size_t(i)];
    if (below("brightness", p, kProperties[0].get)) f |= 1u << kDark;
    if (p.brightness > range["brightness"].second) f |= 1u << kBright;
    if (below("blur", p, kProperties[2].get)) f |= 1u << kBlurry;
    if (below("entropy", p, kProperties[3].get)) f |= 1u << kLowInformation;
    const double area = kProperties[4].get(p), aspect = kProperties[5].get(p);
    if (area < range["area"].first || area > range["area"].second ||
        aspect < range["aspect"].first || aspect > range["aspect"].second) {
      f |= 1u << kOddSize;
    }
    if (p.grayscale) f |= 1u << kGrayscale;
  }
  auto r = [&](const char* p) { return range[p]; };
  rules["dark"] = "brightness < " + fmt(r("brightness").first) + " (0.5th percentile)";
  rules["bright"] = "brightness > " + fmt(r("brightness").second) + " (99.5th percentile)";
  rules["blurry"] = "blur (Laplacian variance) < " + fmt(r("blur").first) + " (0.5th percentile)";
  rules["low_information"] = "entropy < " + fmt(r("entropy").first) + " bits (0.5th percentile)";
  rules["odd_size"] = "area outside " + fmt(r("area").first) + ".." + fmt(r("area").second) +
                      " pixels or aspect outside " + fmt(r("aspect").first) + ".." +
                      fmt(r("aspect").second) + " (0.5th..99.5th percentiles)";
  rules["grayscale"] = "every pixel's channels within 8 levels of each other";
  rules["unreadable"] = "the file passed the scan's checks but could not be decoded";
  rules["exact_duplicate"] = "the same decoded pixels as another image (hash of the pixels)";
  rules["near_duplicate"] = "dHash within " + std::to_string(data::kNearDHashMax) +
                            " bits and pHash within " + std::to_string(data::kNearPHashMax) +
                            " bits of another image of its group (groups join such pairs)";
  rules["leakage"] = "its duplicate group holds images of more than one labelled split";
  rules["unlabelled_duplicate"] = "its duplicate group holds unlabelled and labelled images";
  rules["label_conflict"] = "the labelled images of its duplicate group disagree";
  rules["mistakenness"] =
      "FiftyOne's mistakenness > 0.5: the prediction disagrees with the label (the more "
      "confident, the higher)";
  rules["confident_learning"] =
      "confident learning: the class whose probability clears its threshold (the mean "
      "probability of that class over the images labelled with it) is not the label";
}

json size_table(const ExploreTable& t) {
  std::map<std::pair<int, int>, int64_t> count;
  for (int64_t i = 0; i < t.n; ++i) {
    if (t.readable[size_t(i)]) count[{t.props[size_t(i)].width, t.props[size_t(i)].height}]++;
  }
  std::vector<std::pair<std::pair<int, int>, int64_t>> v(count.begin(), count.end());
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  json a = json::array();
  for (const auto& [wh, c] : v) a.push_back(json{{"w", wh.first}, {"h", wh.second}, {"count", c}});
  return a;
}

// Step 3: duplicates. Exact: equal hashes of the decoded pixels. Near: both perceptual hashes
// within their thresholds (exact copies included); groups are connected components of near pairs.
json find_duplicates(ExploreTable& t, const std::vector<Split>& splits) {
  t.exact_group.assign(size_t(t.n), -1);
  t.near_group.assign(size_t(t.n), -1);
  std::vector<std::pair<int64_t, int64_t>> exact_edges, near_edges;
  std::vector<int64_t> order;
  for (int64_t i = 0; i < t.n; ++i) {
    if (t.readable[size_t(i)]) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return t.exact_hash[size_t(a)] < t.exact_hash[size_t(b)];
  });
  for (size_t k = 1; k < order.size(); ++k) {
    if (t.exact_hash[size_t(order[k])] == t.exact_hash[size_t(order[k - 1])]) {
      exact_edges.push_back({order[k - 1], order[k]});
    }
  }
  // Unreadable images get hashes no readable image can be near: they are left out by index.
  std::vector<data::NearPair> pairs =
      data::near_duplicate_pairs(t.dhash, t.phash, data::kNearDHashMax, data::kNearPHashMax);
  json within = json::object(), across = json::object();
  for (const auto& s : splits) within[s.name] = 0;
  for (size_t a = 0; a < splits.size(); ++a) {
    for (size_t b = a + 1; b < splits.size(); ++b)
      across[splits[a].name + "/" + splits[b].name] = 0;
  }
  for (const auto& p : pairs) {
    if (!t.readable[size_t(p.a)] || !t.readable[size_t(p.b)]) continue;
    near_edges.push_back({p.a, p.b});
    const int sa = t.split[size_t(p.a)], sb = t.split[size_t(p.b)];
    if (sa == sb) {
      within[splits[size_t(sa)].name] = within[splits[size_t(sa)].name].get<int64_t>() + 1;
    } else {
      const std::string key =
          splits[size_t(std::min(sa, sb))].name + "/" + splits[size_t(std::max(sa, sb))].name;
      across[key] = across[key].get<int64_t>() + 1;
    }
  }
  near_edges.insert(near_edges.end(), exact_edges.begin(), exact_edges.end());
  auto exact = data::connected_groups(t.n, exact_edges);
  auto near = data::connected_groups(t.n, near_edges);
  json conflicts = json::array();
  for (size_t g = 0; g < exact.size(); ++g) {
    for (int64_t i : exact[g]) {
      t.exact_group[size_t(i)] = int(g);
      t.flags[size_t(i)] |= 1u << kExactDuplicate;
    }
  }
  for (size_t g = 0; g < near.size(); ++g) {
    std::set<int> labels;
    bool labelled_split = false, unlabelled_split = false;
    std::set<int> labelled_splits;
    for (int64_t i : near[g]) {
      t.near_group[size_t(i)] = int(g);
      t.flags[size_t(i)] |= 1u << kNearDuplicate;
      if (t.label[size_t(i)] >= 0) labels.insert(t.label[size_t(i)]);
      const Split& s = splits[size_t(t.split[size_t(i)])];
      (s.labelled ? labelled_split : unlabelled_split) = true;
      if (s.labelled) labelled_splits.insert(t.split[size_t(i)]);
    }
    uint32_t f = 0;
    if (labelled_splits.size() > 1) f |= 1u << kLeakage;
    if (labelled_split && unlabelled_split) f |= 1u << kUnlabelledDuplicate;
    if (labels.size() > 1) {
      f |= 1u << kLabelConflict;
      conflicts.push_back(g);
    }
    for (int64_t i : near[g]) t.flags[size_t(i)] |= f;
  }
  return json{{"dhash_max", data::kNearDHashMax},
              {"phash_max", data::kNearPHashMax},
              {"exact", exact},
              {"near", near},
              {"pairs", {{"within", within}, {"across", across}}},
              {"conflicts", conflicts}};
}

// Step 4 (with a checkpoint): the model over every split. Rows of images the loader could not
// decode stay without a prediction (pred -1, probabilities 0).
json run_checkpoint(ExploreTable& t, const std::vector<Split>& splits, LoadedModel& m,
                    const ExploreOptions& o, json& predicted) {
  const int nc = t.num_classes = int(m.info.classes.size());
  t.has_model = true;
  t.pred.assign(size_t(t.n), -1);
  t.probs.assign(size_t(t.n * nc), 0.f);
  engine::Device dev = choose_device(o.device, o.backend);
  m.net->to(dev);
  json evaluation = json::object();
  predicted = json::object();
  for (const auto& s : splits) {
    Progress bar("predicting " + s.name, s.ds.size());
    ModelOutputs out = run_model(m, s.ds, o.batch_size, o.workers, dev,
                                 [&](int64_t done, int64_t) { bar.update(done, "", done); });
    bar.finish();
    if (t.features.empty()) {
      t.feature_dim = out.feature_dim;
      t.features.assign(size_t(t.n * t.feature_dim), 0.f);
    }
    std::vector<int64_t> counts(size_t(nc), 0);
    std::vector<int> labels;
    for (int64_t r = 0; r < out.n; ++r) {
      const int64_t i = s.first + out.kept[size_t(r)];
      t.pred[size_t(i)] = out.pred[size_t(r)];
      counts[size_t(out.pred[size_t(r)])]++;
      std::copy_n(out.probs.begin() + r * nc, nc, t.probs.begin() + i * nc);
      std::copy_n(out.features.begin() + r * t.feature_dim, t.feature_dim,
                  t.features.begin() + i * t.feature_dim);
      labels.push_back(t.label[size_t(i)]);
    }
    predicted[s.name] = counts;
    if (!s.labelled || out.n == 0) continue;
    json e = evaluation_json(eval_from_predictions(out, labels), m.info.classes);
    e["ece"] = round_to(expected_calibration_error(out.probs, labels, nc), 6);
    e["data"] = s.ds.report().root;
    evaluation[s.name] = e;
  }
  return evaluation;
}

// Label-error candidates and per-image hardness over every labelled image.
json find_label_errors(ExploreTable& t) {
  const int nc = t.num_classes;
  std::vector<int> labels(size_t(t.n));
  for (int64_t i = 0; i < t.n; ++i)
    labels[size_t(i)] = t.pred[size_t(i)] < 0 ? -1 : t.label[size_t(i)];
  t.mistake = mistakenness(t.probs, labels, nc);
  ConfidentLearning cl = confident_learning(t.probs, labels, nc);
  t.self_conf = cl.self_confidence;
  t.cl.assign(size_t(t.n), 0);
  t.hard = softmax_entropy(t.probs, nc);
  t.margin = top2_margin(t.probs, nc);
  std::vector<int64_t> mistaken;
  for (int64_t i = 0; i < t.n; ++i) {
    if (t.pred[size_t(i)] < 0) t.hard[size_t(i)] = t.margin[size_t(i)] = -1;
    if (labels[size_t(i)] < 0) continue;
    if (t.mistake[size_t(i)] > 0.5f) {
      mistaken.push_back(i);
      t.flags[size_t(i)] |= 1u << kMistakenness;
    }
    if (cl.flagged[size_t(i)]) {
      t.cl[size_t(i)] = 1;
      t.flags[size_t(i)] |= 1u << kConfidentLearning;
    }
  }
  std::stable_sort(mistaken.begin(), mistaken.end(), [&](int64_t a, int64_t b) {
    return t.mistake[size_t(a)] > t.mistake[size_t(b)];
  });
  return json{{"mistakenness", mistaken}, {"confident_learning", cl.ranking}};
}

// Step 5: the embedding: the penultimate layer's features with a checkpoint, else the colour
// histograms; its 2-D PCA map and each image's uniqueness in the full feature space. Unreadable
// images sit at the origin with uniqueness 0.
json embed(ExploreTable& t) {
  const bool model = t.has_model;
  const std::vector<float>& src = model ? t.features : t.colour;
  const int64_t dim = model ? t.feature_dim : t.colour_dim;
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < t.n; ++i) {
    if (t.readable[size_t(i)] && (!model || t.pred[size_t(i)] >= 0)) rows.push_back(i);
  }
  std::vector<float> x(rows.size() * size_t(dim));
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy_n(src.begin() + rows[r] * dim, dim, x.begin() + ptrdiff_t(r * size_t(dim)));
  }
  t.emb.assign(size_t(t.n) * 2, 0.f);
  t.uniq.assign(size_t(t.n), 0.f);
  Pca2 p;
  if (!rows.empty()) {
    p = pca2(x, int64_t(rows.size()), dim);
    std::vector<float> u = knn_uniqueness(x, int64_t(rows.size()), dim, 3);
    for (size_t r = 0; r < rows.size(); ++r) {
      t.emb[size_t(rows[r]) * 2] = p.xy[r * 2];
      t.emb[size_t(rows[r]) * 2 + 1] = p.xy[r * 2 + 1];
      t.uniq[size_t(rows[r])] = u[r];
    }
  }
  return json{{"source", model ? "penultimate" : "color_histogram"},
              {"dim", dim},
              {"explained", {round_to(p.explained[0], 4), round_to(p.explained[1], 4)}}};
}

json image_columns(const ExploreTable& t) {
  json c = json::object();
  c["split"] = t.split;
  c["path"] = t.path;
  c["label"] = t.label;
  c["w"] = column(t.props, [](const data::ImageProperties& p) { return p.width; });
  c["h"] = column(t.props, [](const data::ImageProperties& p) { return p.height; });
  c["brightness"] =
      column(t.props, [](const data::ImageProperties& p) { return round_to(p.brightness, 2); });
  c["contrast"] =
      column(t.props, [](const data::ImageProperties& p) { return round_to(p.contrast, 2); });
  c["blur"] = column(t.props, [](const data::ImageProperties& p) { return round_to(p.blur, 2); });
  c["entropy"] =
      column(t.props, [](const data::ImageProperties& p) { return round_to(p.entropy, 3); });
  c["gray"] = column(t.props, [](const data::ImageProperties& p) { return p.grayscale ? 1 : 0; });
  c["flags"] = t.flags;
  c["exact"] = t.exact_group;
  c["near"] = t.near_group;
  c["emb"] = rounded(t.emb, 4);
  c["uniq"] = rounded(t.uniq, 4);
  if (t.has_model) {
    c["pred"] = t.pred;
    c["prob"] = rounded(t.probs, 4);
    c["mistake"] = rounded(t.mistake, 4);
    c["cl"] = t.cl;
    c["self_conf"] = rounded(t.self_conf, 4);
    c["hard"] = rounded(t.hard, 4);
    c["margin"] = rounded(t.margin, 4);
  }
  return c;
}

// Step 6: the thumbnails as sprite sheets of cols x cols cells (JPEG), image i in sheet
// i / cells, cell i % cells, row-major.
constexpr int kSheetCols = 32;
json write_sheets(const ExploreTable& t, int side, const std::string& dir) {
  const int64_t per = int64_t(kSheetCols) * kSheetCols;
  const int64_t sheets = (t.n + per - 1) / per;
  std::vector<std::string> names(static_cast<size_t>(sheets));
  const size_t thumb_bytes = size_t(side) * size_t(side) * 3;
  Progress bar("writing thumbnails", sheets);
  for (int64_t s = 0; s < sheets; ++s) {
    const int64_t count = std::min(per, t.n - s * per);
    const int rows = int((count + kSheetCols - 1) / kSheetCols);
    data::Image sheet(kSheetCols * side, rows * side);
    std::fill(sheet.pixels.begin(), sheet.pixels.end(), uint8_t(255));
    for (int64_t c = 0; c < count; ++c) {
      const uint8_t* th = t.thumbs.data() + size_t(s * per + c) * thumb_bytes;
      const int x0 = int(c % kSheetCols) * side, y0 = int(c / kSheetCols) * side;
      for (int y = 0; y < side; ++y) {
        std::copy_n(th + size_t(y) * size_t(side) * 3, size_t(side) * 3,
                    sheet.row(y0 + y) + size_t(x0) * 3);
      }
    }
    char name[64];
    std::snprintf(name, sizeof name, "thumbs/sheet-%04lld.jpg", static_cast<long long>(s));
    names[size_t(s)] = name;
    std::vector<uint8_t> jpg = data::encode_jpeg(sheet, 80);
    engine::write_file_atomic(dir + "/" + name, {std::span<const uint8_t>(jpg)});
    bar.update(s + 1, "", (s + 1) * per);
  }
  bar.finish();
  return json{{"side", side}, {"cols", kSheetCols}, {"per_sheet", per}, {"sheets", names}};
}

void write_page(const std::string& dir) {
  for (size_t i = 0; i < kExplorePage_count; ++i) {
    const EmbeddedFile& f = kExplorePage[i];
    engine::write_file_atomic(dir + "/" + f.name, {std::span<const uint8_t>(f.data, f.size)});
  }
}

std::string absolute(const std::string& p) {
  return fs::absolute(fs::path(p)).lexically_normal().generic_string();
}

// The folder the report is built in, beside the final one, and the move into place.
std::string start_output(const ExploreOptions& o) {
  ENGINE_CHECK(!o.out.empty(), "--out: the report folder is required");
  std::error_code ec;
  if (fs::exists(o.out, ec) && !o.overwrite) {
    throw engine::Error("output folder '" + o.out + "' exists: give --overwrite to replace it");
  }
  if (fs::exists(o.out, ec) && !fs::is_directory(o.out, ec)) {
    throw engine::Error("output path '" + o.out + "' exists and is not a folder");
  }
  const std::string tmp = absolute(o.out) + ".partial-" + std::to_string(getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp + "/data", ec);
  if (!ec) fs::create_directories(tmp + "/thumbs", ec);
  if (ec) throw engine::Error("cannot create folder '" + tmp + "': " + ec.message());
  return tmp;
}

void finish_output(const std::string& tmp, const std::string& out) {
  std::error_code ec;
  const std::string old = absolute(out) + ".old-" + std::to_string(getpid());
  const bool existed = fs::exists(out, ec);
  if (existed) fs::rename(out, old, ec);
  if (ec) throw engine::Error("cannot move the old report '" + out + "' aside: " + ec.message());
  fs::rename(tmp, out, ec);
  if (ec) {
    if (existed) fs::rename(old, out);
    throw engine::Error("cannot move the report into '" + out + "': " + ec.message());
  }
  if (existed) fs::remove_all(old, ec);
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

}  // namespace

std::vector<ExploreSplitSpec> find_explore_splits(const std::string& data_dir) {
  std::error_code ec;
  if (!fs::is_directory(data_dir, ec)) {
    throw engine::Error("data folder '" + data_dir + "' does not exist or is not a folder");
  }
  std::vector<ExploreSplitSpec> v;
  const std::pair<const char*, const char*> kaggle[] = {
      {"train", "seg_train"}, {"test", "seg_test"}, {"unlabelled", "seg_pred"}};
  for (const auto& [name, folder] : kaggle) {
    if (fs::is_directory(fs::path(data_dir) / folder, ec)) {
      v.push_back({name, (fs::path(data_dir) / folder).string()});
    }
  }
  if (v.empty()) {
    std::string name = fs::path(data_dir).lexically_normal().filename().string();
    if (name.empty())
      name = fs::path(data_dir).lexically_normal().parent_path().filename().string();
    v.push_back({name.empty() ? "data" : name, data_dir});
  }
  return v;
}

ExploreSplitSpec parse_split_flag(const std::string& value) {
  const size_t eq = value.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == value.size()) {
    throw engine::Error("--split '" + value + "': expected NAME=DIR, e.g. test=data/seg_test");
  }
  const std::string name = value.substr(0, eq);
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      throw engine::Error("--split '" + value + "': the name may use letters, digits, '_' and '-'");
    }
  }
  return {name, value.substr(eq + 1)};
}

std::string write_explore_report(const ExploreOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  ENGINE_CHECK(o.thumb_side >= 16 && o.thumb_side <= 256, "--thumb-size ", o.thumb_side,
               ": must be in 16..256");
  ENGINE_CHECK(o.batch_size >= 1, "--batch-size ", o.batch_size, ": must be at least 1");
  ENGINE_CHECK(o.workers >= 0 && o.workers <= 64, "--workers ", o.workers, ": must be in 0..64");
  std::vector<ExploreSplitSpec> specs =
      o.splits.empty() ? find_explore_splits(o.data_dir) : o.splits;
  std::optional<LoadedModel> model;
  if (!o.checkpoint.empty()) model = load_weights(o.checkpoint);
  const std::string tmp = start_output(o);
  try {
    std::vector<Split> splits = scan_splits(specs, o.strict);
    const std::vector<std::string> classes = dataset_classes(splits);
    if (model && !classes.empty() && model->info.classes != classes) {
      throw engine::Error("the checkpoint '" + o.checkpoint + "' was trained on the classes " +
                          join(model->info.classes) + ", the data folders have " + join(classes));
    }
    ExploreTable t;
    measure_images(splits, o.thumb_side, t);
    json report = json::object();
    report["format"] = 1;
    report["engine_version"] = ENGINE_VERSION;
    report["data_root"] = o.data_dir.empty() ? "" : absolute(o.data_dir);
    report["classes"] = model ? model->info.classes : classes;
    json split_list = json::array();
    for (const auto& s : splits) {
      split_list.push_back(json{{"name", s.name},
                                {"dir", absolute(s.ds.report().root)},
                                {"labelled", s.labelled},
                                {"images", s.ds.size()},
                                {"first", s.first},
                                {"bad", s.bad},
                                {"hidden", s.ds.report().hidden},
                                {"other", s.ds.report().other}});
    }
    report["splits"] = split_list;
    report["checkpoint"] = nullptr;
    if (model) {
      report["checkpoint"] =
          json{{"path", absolute(o.checkpoint)}, {"sha256", sha256_file(o.checkpoint)},
               {"model", model->info.model},     {"image_size", model->info.image_size},
               {"width", model->info.width},     {"weights", model->info.weights}};
    }
    json properties, rules;
    flag_properties(t, properties, rules);
    json duplicates = find_duplicates(t, splits);
    json evaluation, predicted, label_errors;
    if (model) {
      evaluation = run_checkpoint(t, splits, *model, o, predicted);
      label_errors = find_label_errors(t);
    }
    json embedding = embed(t);
    report["thumbs"] = write_sheets(t, o.thumb_side, tmp);
    json names = json::array();
    for (const char* f : kFlagNames) names.push_back(f);
    report["flag_names"] = names;
    report["images"] = image_columns(t);
    json unreadable = json::array();
    for (int64_t i = 0; i < t.n; ++i) {
      if (!t.readable[size_t(i)])
        unreadable.push_back(json{{"index", i}, {"reason", t.errors[size_t(i)]}});
    }
    report["unreadable"] = unreadable;
    report["properties"] = properties;
    report["flag_rules"] = rules;
    report["sizes"] = size_table(t);
    report["duplicates"] = duplicates;
    report["embedding"] = embedding;
    if (model) {
      report["evaluation"] = evaluation;
      report["predicted"] = predicted;
      report["label_errors"] = label_errors;
    }
    engine::write_file_atomic(tmp + "/data/report.js", "window.EXPLORE = " + report.dump() + ";\n");
    write_page(tmp);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json run{{"seconds", round_to(seconds, 1)}, {"finished", utc_now()}, {"command", o.command}};
    engine::write_file_atomic(tmp + "/run.js", "window.EXPLORE_RUN = " + run.dump() + ";\n");
    finish_output(tmp, o.out);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return absolute(o.out) + "/index.html";
}

}  // namespace app
