// SPDX-License-Identifier: Apache-2.0
// Which strategy serves a mode here: pure decision logic, unit-tested.
#pragma once

#include <string>

#include "common/settings.h"
#include "supervisor/config.h"

namespace keepalive {

struct StrategyChoice {
  bool ok = true;
  Strategy strategy = Strategy::kEmulate;  // kEmulate or kContinue when ok
  std::string reason;    // why, for -v and --check
  std::string degraded;  // non-empty: one line saying what is lost
  std::string error;     // when !ok: why the request cannot be served
};

// `getfd_permitted`: whether pidfd_getfd on the target works (it does not
// under Docker's and containerd's default seccomp profiles, nor where Yama
// or dumpability forbid it); `getfd_error` is its errno when not.
// `emulation_can_leak`: the kernel lacks WAIT_KILLABLE_RECV (Linux 5.19),
// so a signal to the target between the two steps of emulation (add the
// fd, answer) leaves the fd in the target's table.
//  - socket mode, auto: emulate (one trap per TCP socket, nothing else);
//    continue where emulation can leak and pidfd_getfd is permitted.
//  - connect/listen mode, auto: continue (only the mode's own calls get
//    options); emulate with a degraded note where pidfd_getfd is refused.
//  - an explicit strategy is honoured or refused with a reason.
StrategyChoice choose_strategy(Strategy requested, Mode mode,
                               bool getfd_permitted, int getfd_error,
                               bool emulation_can_leak = false);

// Whether the kernel accepts SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux
// 5.19+): one failing seccomp() call, a few microseconds.
bool kernel_has_wait_killable_recv();

}  // namespace keepalive
