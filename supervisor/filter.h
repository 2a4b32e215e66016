// The seccomp filter installed on the target: which calls leave the kernel
// as user notifications. Everything else, including every other
// architecture's calls, is allowed untouched.
#pragma once

#include <linux/filter.h>
#include <stddef.h>

#include <vector>

#include "common/settings.h"
#include "supervisor/config.h"
#include "supervisor/error.h"

namespace keepalive {

struct FilterSpec {
  Mode mode = Mode::kSocket;
  Strategy strategy = Strategy::kEmulate;  // kEmulate or kContinue
  bool deny_io_uring = false;
  // Emulate only: also trap execve/execveat, which change credentials when
  // no_new_privs is off (setuid programs).
  bool watch_exec = false;
};

// Whether syscall `nr` can give the calling thread other credentials or
// another network namespace (the setuid family, setgroups, unshare, setns,
// and execve/execveat). Under kEmulate the filter traps them so that the
// supervisor can forget what it knew of the thread (see task_cache.h); they
// are rare, and answered at once with CONTINUE.
bool changes_identity(int nr);

// The programs are compiled by libseccomp when the supervisor is built
// (filter_rules.h), one for each FilterSpec: building one at run time cost
// every start about a third of a millisecond, with the child waiting.

// How many FilterSpecs there are, and a numbering of them.
inline constexpr size_t kFilterSpecCount = 3 * 2 * 2 * 2;
constexpr size_t filter_spec_index(const FilterSpec& spec) {
  size_t mode = spec.mode == Mode::kSocket    ? 0
                : spec.mode == Mode::kConnect ? 1
                                              : 2;
  size_t emulate = spec.strategy == Strategy::kEmulate ? 1 : 0;
  return ((mode * 2 + emulate) * 2 + (spec.deny_io_uring ? 1 : 0)) * 2 +
         (spec.watch_exec ? 1 : 0);
}
constexpr FilterSpec filter_spec_at(size_t index) {
  constexpr Mode kModes[] = {Mode::kSocket, Mode::kConnect, Mode::kListen};
  return {kModes[index / 8],
          (index / 4) % 2 != 0 ? Strategy::kEmulate : Strategy::kContinue,
          (index / 2) % 2 != 0, index % 2 != 0};
}

// The BPF program for `spec` (and libseccomp's API level pinned at 5, for
// the notification handler's calls, see filter.cc):
//  - kEmulate: socket() with domain AF_INET/AF_INET6, (type & 0xf) ==
//    SOCK_STREAM and protocol 0, IPPROTO_TCP or IPPROTO_MPTCP, checked in BPF
//    so that no other socket() call leaves the kernel;
//  - kContinue: connect() in connect and socket modes, listen() in listen
//    and socket modes;
//  - kEmulate: also the calls for which changes_identity() is true (exec
//    only with watch_exec);
//  - io_uring_setup: a notification (the supervisor warns once), or ENOSYS
//    in the filter itself when deny_io_uring.
Result<std::vector<sock_filter>> build_filter(const FilterSpec& spec);

}  // namespace keepalive
