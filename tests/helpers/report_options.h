// SPDX-License-Identifier: Apache-2.0
// Shared by the helper programs: print the TCP options the kernel reports on
// one of the program's own sockets, in the format sockopt_probe uses.
#pragma once

#include <stdio.h>
#include <sys/socket.h>

#include "common/settings.h"

namespace keepalive::helpers {

// One "[PREFIX ]NAME VALUE" line per option, in upstream's order; VALUE is
// -1 where getsockopt fails (e.g. a TCP option on a UNIX socket).
inline void report_options(const char* prefix, int fd) {
  for (int i = 0; i < kOptionCount; ++i) {
    const OptionInfo& info = option_info(static_cast<Option>(i));
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(fd, info.level, info.optname, &value, &len) != 0) value = -1;
    printf("%s%s%s %d\n", prefix, *prefix != '\0' ? " " : "", info.sockopt_name,
           value);
  }
}

}  // namespace keepalive::helpers
