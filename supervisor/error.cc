// SPDX-License-Identifier: Apache-2.0
#include "supervisor/error.h"

#include <errno.h>
#include <string.h>

namespace keepalive {

std::string SysError::message() const {
  if (err == 0) return context;
  char buf[128];
  return context + ": " + strerror_r(err, buf, sizeof buf);
}

std::unexpected<SysError> errno_error(std::string context) {
  int saved = errno;
  return std::unexpected(SysError{saved, std::move(context)});
}

}  // namespace keepalive
