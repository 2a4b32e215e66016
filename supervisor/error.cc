// SPDX-License-Identifier: Apache-2.0
#include "supervisor/error.h"

#include <errno.h>
#include <string.h>

namespace keepalive {

std::string errno_text(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

std::string SysError::message() const {
  if (err == 0) return context;
  return context + ": " + errno_text(err);
}

std::unexpected<SysError> errno_error(std::string context) {
  int saved = errno;
  return std::unexpected(SysError{saved, std::move(context)});
}

}  // namespace keepalive
