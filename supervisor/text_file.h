// SPDX-License-Identifier: Apache-2.0
// Small text files (/proc's): read whole, or line by line. Plain read(2)
// rather than iostreams, which would link the C++ locale machinery into
// the supervisor and run its start-up work in every supervised program.
#pragma once

#include <fcntl.h>

#include <string>
#include <string_view>

#include "supervisor/error.h"

namespace keepalive {

// The whole text of `name`, relative to directory `dirfd` (or AT_FDCWD).
Result<std::string> read_small_file_at(int dirfd, const char* name);

// The whole text of `path`.
inline Result<std::string> read_small_file(const std::string& path) {
  return read_small_file_at(AT_FDCWD, path.c_str());
}

// Calls `each(line)` for every line of `path` (without its newline) and
// returns how many there were; 0 when the file cannot be read.
template <typename Each>
size_t for_each_line(const std::string& path, Each each) {
  Result<std::string> text = read_small_file(path);
  if (!text) return 0;
  size_t count = 0;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    each(line);
    ++count;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return count;
}

}  // namespace keepalive
