// SPDX-License-Identifier: Apache-2.0
#include "supervisor/fd_limit.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

namespace keepalive {

DescriptorBudget reserve_descriptors(int descriptors) {
  DescriptorBudget budget;
  if (getrlimit(RLIMIT_NOFILE, &budget.original) != 0) {
    budget.error = errno;
    return budget;
  }
  // The number of the descriptors-th free fd, plus one: scanning stops
  // there, so this costs one fcntl per inherited fd plus `descriptors`.
  int free_seen = 0;
  rlim_t fd = 0;
  for (; free_seen < descriptors; ++fd) {
    if (fcntl(static_cast<int>(fd), F_GETFD) < 0 && errno == EBADF) {
      ++free_seen;
    }
  }
  budget.needed = fd;
  budget.open_already = fd - static_cast<rlim_t>(descriptors);
  rlimit now = budget.original;
  if (now.rlim_cur != RLIM_INFINITY && now.rlim_cur < budget.needed) {
    if (now.rlim_max == RLIM_INFINITY || now.rlim_max >= budget.needed) {
      // All the way to the hard limit, as most servers do: the task cache
      // keeps a pidfd per thread of the command.
      now.rlim_cur = now.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &now) != 0) {
        budget.error = errno;
        return budget;
      }
      budget.raised = true;
    }
  }
  budget.enough =
      now.rlim_cur == RLIM_INFINITY || now.rlim_cur >= budget.needed;
  return budget;
}

std::string describe_shortfall(const DescriptorBudget& budget,
                               const std::string& who) {
  if (budget.error != 0) {
    return std::string("RLIMIT_NOFILE: ") + strerrordesc_np(budget.error);
  }
  rlim_t own = budget.needed - budget.open_already;
  std::string beside =
      budget.open_already > 3
          ? " (" + std::to_string(own) + " beside the " +
                std::to_string(budget.open_already) + " open already)"
          : "";
  return "RLIMIT_NOFILE: " + who + " needs " +
         std::to_string(budget.needed) + " file descriptors" + beside +
         ", the hard limit is " +
         std::to_string(budget.original.rlim_max) +
         " (raise it with ulimit -n)";
}

}  // namespace keepalive
