// SPDX-License-Identifier: Apache-2.0
#include "supervisor/text_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/unique_fd.h"

namespace keepalive {

Result<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error("open " + path);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read " + path);
    if (n == 0) break;
    text.append(buf, n);
  }
  return text;
}

}  // namespace keepalive
