// SPDX-License-Identifier: Apache-2.0
#include "supervisor/text_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/unique_fd.h"

namespace keepalive {

Result<std::string> read_small_file_at(int dirfd, const char* name) {
  UniqueFd fd(openat(dirfd, name, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(std::string("open ") + name);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(std::string("read ") + name);
    if (n == 0) break;
    text.append(buf, n);
  }
  return text;
}

}  // namespace keepalive
