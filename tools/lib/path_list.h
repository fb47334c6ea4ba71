// Lists of image files given to the tools: train --exclude reads the tags CSV the explorer's page
// downloads (path,split,label,tag: its `path` column) or a plain list with one path per line.
#pragma once
#include <string>
#include <unordered_set>

namespace app {

// The paths in `file`, absolute and lexically normal (data::absolute_path; relative ones are taken
// from the current folder). A first line with a field named "path" makes the file a CSV whose
// `path` column is read (double-quoted fields as RFC 4180 writes them); otherwise every non-empty
// line is one path. Throws naming the file (and the line) when it cannot be read or a CSV row has
// no path field.
std::unordered_set<std::string> read_path_list(const std::string& file);

}  // namespace app
