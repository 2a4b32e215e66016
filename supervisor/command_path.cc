// SPDX-License-Identifier: Apache-2.0
#include "supervisor/command_path.h"

#include <limits.h>
#include <string.h>

namespace keepalive {

CommandPath command_path(const std::string& file, const char* path_env) {
  CommandPath result;
  if (file.empty()) {
    result.error = ENOENT;
    return result;
  }
  if (file.find('/') != std::string::npos) {
    result.candidates.push_back(file);
    return result;
  }
  result.search = true;
  if (file.size() >= NAME_MAX) {
    result.error = ENAMETOOLONG;
    return result;
  }
  // confstr(_CS_PATH) on glibc.
  const char* path = path_env != nullptr ? path_env : "/bin:/usr/bin";
  // glibc sizes its buffer from PATH cut at PATH_MAX - 1 and skips an
  // element that would not fit.
  size_t longest = strnlen(path, PATH_MAX - 1);
  for (const char* element = path;; ++element) {
    const char* end = strchrnul(element, ':');
    size_t length = static_cast<size_t>(end - element);
    if (length <= longest) {
      std::string candidate(element, length);
      if (length > 0) candidate += '/';
      candidate += file;
      result.candidates.push_back(std::move(candidate));
    }
    if (*end == '\0') break;
    element = end;
  }
  return result;
}

}  // namespace keepalive
