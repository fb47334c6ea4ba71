#include "tools/lib/path_list.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <vector>

#include "data/dataset.h"
#include "engine/error.h"

namespace app {
namespace {

// One CSV line's fields; quotes as RFC 4180 ("a ""b""" -> a "b").
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> f(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        f.back() += '"', ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        f.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      f.emplace_back();
    } else {
      f.back() += c;
    }
  }
  return f;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::unordered_set<std::string> read_path_list(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw engine::Error("cannot read the list of images '" + file + "'");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  std::unordered_set<std::string> paths;
  int column = -1;
  if (!lines.empty()) {
    const std::vector<std::string> head = csv_fields(lines[0]);
    for (size_t k = 0; k < head.size(); ++k) {
      if (lower(head[k]) == "path") column = int(k);
    }
  }
  for (size_t i = column >= 0 ? 1 : 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    std::string path = lines[i];
    if (column >= 0) {
      const std::vector<std::string> f = csv_fields(lines[i]);
      if (int(f.size()) <= column || f[size_t(column)].empty()) {
        throw engine::Error("'" + file + "' line " + std::to_string(i + 1) +
                            ": no path in column " + std::to_string(column + 1));
      }
      path = f[size_t(column)];
    }
    paths.insert(data::absolute_path(path));
  }
  return paths;
}

}  // namespace app
