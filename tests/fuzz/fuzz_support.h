// SPDX-License-Identifier: Apache-2.0
// What the fuzz targets share: the bounds a message must keep, fds of a
// few kinds to hand to the code under test (a real seccomp listener among
// them), and a count of this process's open fds for the leak checks.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

#include "common/settings.h"
#include "common/unique_fd.h"
#include "tests/common/seccomp_listener.h"

namespace keepalive::fuzz {

// Aborts, saying why, when `message` is not one line of at most 1024
// bytes: every message built from a user's or a runtime's words quotes
// them (quote_value), so no input may make one long or break it.
inline void check_one_line(std::string_view what, std::string_view message) {
  if (message.size() > 1024 || message.find('\n') != std::string_view::npos ||
      message.find('\0') != std::string_view::npos) {
    fprintf(stderr, "%.*s is not one bounded line (%zu bytes): %.*s\n",
            static_cast<int>(what.size()), what.data(), message.size(),
            static_cast<int>(message.size() > 2048 ? 2048 : message.size()),
            message.data());
    abort();
  }
}

// Aborts when a value of `settings` is outside its option's range (the
// Settings invariant: 0, in range, or the derived user timeout).
inline void check_in_range(const Settings& settings) {
  for (int i = 1; i < kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    int value = settings.value(option);
    const OptionInfo& info = option_info(option);
    bool derived =
        option == Option::kUserTimeout && value == kDeriveUserTimeout;
    if (value != 0 && !derived && (value < info.min || value > info.max)) {
      fprintf(stderr, "option %d out of range: %d\n", i, value);
      abort();
    }
  }
}

// Whether `a` and `b` set the same options the same way.
inline bool same_settings(const Settings& a, const Settings& b) {
  for (int i = 0; i < kOptionCount; ++i) {
    if (a.value(static_cast<Option>(i)) != b.value(static_cast<Option>(i))) {
      return false;
    }
  }
  return a.enabled() == b.enabled() && a.debug() == b.debug() &&
         a.libkeepalive0_order() == b.libkeepalive0_order();
}

// The number of fds this process has open.
inline int count_open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) abort();
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the listing's own
}

// Aborts when `before`, the count from count_open_fds, has changed.
inline void check_no_fd_leaked(int before) {
  int after = count_open_fds();
  if (after != before) {
    fprintf(stderr, "fd leak: %d fds open before the input, %d after\n", before,
            after);
    abort();
  }
}

// A seccomp user-notification listener without tasks
// ("anon_inode:seccomp notify"), made once (tests::make_listener). -1 if
// this process may not make one.
inline int shared_listener() {
  static int listener = [] {
    int fd = tests::make_listener().release();
    if (fd < 0) {
      fprintf(stderr, "fuzz: no seccomp listener; /dev/null instead\n");
    }
    return fd;
  }();
  return listener;
}

// A new fd of kind `kind % 4`: /dev/null, the read or the write end of a
// pipe (the other end closed), or a duplicate of shared_listener().
inline UniqueFd make_fd(unsigned kind) {
  switch (kind % 4) {
    case 1:
    case 2: {
      int ends[2];
      if (pipe2(ends, O_CLOEXEC) != 0) abort();
      UniqueFd read_end(ends[0]), write_end(ends[1]);
      return kind % 4 == 1 ? std::move(read_end) : std::move(write_end);
    }
    case 3:
      if (shared_listener() >= 0) {
        return UniqueFd(fcntl(shared_listener(), F_DUPFD_CLOEXEC, 0));
      }
      [[fallthrough]];
    default:
      return UniqueFd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
}

}  // namespace keepalive::fuzz
