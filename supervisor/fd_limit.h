// SPDX-License-Identifier: Apache-2.0
// The supervisor's own RLIMIT_NOFILE: enough descriptors for its event loop,
// reserved before the command starts, while the command keeps the limits it
// was started with (the launch child restores them just before exec).
#pragma once

#include <sys/resource.h>

#include <string>

namespace keepalive {

// Descriptors the supervisor opens on top of those it inherits. Held for
// the whole run: the signalfd, its end of the launch socketpair, the
// command's pidfd, the seccomp listener, Boost.Asio's epoll, interrupter
// eventfd and timerfd, the serving thread's stop eventfd, the task cache's
// epoll set and the option ring. Held while one call is handled: the
// emulated socket or the pidfd_getfd copy, the caller's pidfd and one /proc
// file. The rest is the start-up's transient ones (the child's end of the
// socketpair, the pidfd_getfd probe, the ring's self-test socket) and room
// for the pidfds the task cache keeps.
inline constexpr int kHeldDescriptors = 10;
inline constexpr int kPerCallDescriptors = 3;
inline constexpr int kSpareDescriptors = 4;
inline constexpr int kSupervisorDescriptors =
    kHeldDescriptors + kPerCallDescriptors + kSpareDescriptors;

struct DescriptorBudget {
  rlimit original{};        // what the supervisor was started with
  rlim_t needed = 0;        // the soft limit the supervisor needs
  rlim_t open_already = 0;  // of those, the ones inherited (fds below)
  bool raised = false;      // the soft limit was raised (toward the hard one)
  bool enough = false;      // the soft limit is now at least `needed`
  int error = 0;            // errno of a failed getrlimit/setrlimit, or 0
};

// Finds the soft RLIMIT_NOFILE at which `descriptors` more fit beside the
// inherited ones (fds are numbered from the lowest free one and must stay
// below the soft limit) and, when the soft limit is lower, raises it to the
// hard limit. Never raises the hard limit. Opens no descriptor.
DescriptorBudget reserve_descriptors(int descriptors);

// The line explaining why `budget` is not enough, without the program name:
// "RLIMIT_NOFILE: WHO needs N file descriptors, the hard limit is H (raise
// it with ulimit -n)", with "(D beside the I open already)" after N when
// more than the standard three were inherited.
std::string describe_shortfall(const DescriptorBudget& budget,
                               const std::string& who = "the supervisor");

}  // namespace keepalive
