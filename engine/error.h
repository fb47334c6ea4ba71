// Error reporting for the engine: every failed check throws engine::Error with a message that
// names the operation and the shapes, files or flags at fault. Library code never exits.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace engine {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "[2, 3, 4]": the one way shapes are printed in messages.
std::string shape_str(const std::vector<int64_t>& shape);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace engine

// ENGINE_CHECK(cond, "conv2d: ", ...) throws engine::Error with the streamed message when cond fails.
#define ENGINE_CHECK(cond, ...)                                    \
  do {                                                             \
    if (!(cond)) throw ::engine::Error(::engine::detail::concat(__VA_ARGS__)); \
  } while (0)
