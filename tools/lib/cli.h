// What every command-line program of the engine does the same way: a bad flag or a failed run is
// one line on stderr, "<tool>: <what is wrong>", and a non-zero exit status.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

namespace app {

// CLI11's parse errors as one line (its default adds a second, "Run with --help ...").
inline void one_line_errors(CLI::App& cli, const std::string& tool) {
  cli.failure_message([tool](const CLI::App*, const CLI::Error& e) {
    return tool + ": " + e.what() + " (see --help)\n";
  });
}

// Prints "<tool>: <message>" with any newline in the message flattened; returns the exit status.
inline int report_failure(const std::string& tool, const std::exception& e) {
  std::string msg = e.what();
  for (char& c : msg) c = (c == '\n' || c == '\r') ? ' ' : c;
  std::fprintf(stderr, "%s: %s\n", tool.c_str(), msg.c_str());
  return 1;
}

}  // namespace app
