// Files compiled into the programs (tools/embed_files.cmake writes their bytes at build time): the
// explorer's page (tools/explore_page/), which it copies into every report it writes.
#pragma once
#include <cstddef>

namespace app {

struct EmbeddedFile {
  const char* name;  // file name alone, e.g. "index.html"
  const unsigned char* data;
  size_t size;
};

extern const EmbeddedFile kExplorePage[];
extern const size_t kExplorePage_count;

}  // namespace app
