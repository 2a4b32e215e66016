// SPDX-License-Identifier: Apache-2.0
// Errors in syscall paths are values: the errno and what was being done.
#pragma once

#include <expected>
#include <string>

namespace keepalive {

struct SysError {
  int err = 0;          // errno value; 0: `context` says it all
  std::string context;  // e.g. "pidfd_getfd(pid 12, fd 3)"

  // "context: strerror(err)", or `context` alone when err is 0.
  std::string message() const;
};

template <typename T>
using Result = std::expected<T, SysError>;

// strerror(err), thread-safe.
std::string errno_text(int err);

// The SysError for the current errno, with `context`.
std::unexpected<SysError> errno_error(std::string context);

}  // namespace keepalive
