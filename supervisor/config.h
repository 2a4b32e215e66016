// SPDX-License-Identifier: Apache-2.0
// What the command line asks the supervisor to do.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/settings.h"

namespace keepalive {

// How options reach the target's sockets (README, "How the code is laid
// out"):
//  - kEmulate: trap TCP socket() calls, create the socket in the supervisor,
//    set the options, inject it with SECCOMP_IOCTL_NOTIF_ADDFD;
//  - kContinue: trap connect()/listen(), copy the target's fd with
//    pidfd_getfd, set the options, let the call continue in the kernel.
enum class Strategy { kAuto, kEmulate, kContinue };

// Returns "auto", "emulate" or "continue".
const char* strategy_name(Strategy strategy);

// Attaching to running processes instead of running a command
// (supervisor/attach.h): whose sockets, and how.
struct AttachRequest {
  std::vector<pid_t> pids;   // --pid
  std::string cgroup;        // --cgroup: a cgroup directory
  bool dry_run = false;      // --dry-run: say, change nothing
  int watch_ms = 0;          // --watch: rescan every watch_ms; 0: once
  bool follow = false;       // --follow: then put the filter into it
  std::string agent;         // --agent: hand the listener to this socket

  bool requested() const { return !pids.empty() || !cgroup.empty(); }
};

struct Config {
  Settings settings;
  Mode mode = Mode::kSocket;
  Strategy strategy = Strategy::kAuto;
  bool verbose = false;        // -v: decisions and one line per socket
  bool deny_io_uring = false;  // io_uring_setup fails with ENOSYS
  bool init = false;           // act as init: reap orphans (implied as PID 1)
  bool signal_group = false;   // child in its own group; signal the group
  bool fail_open = false;      // run unsupervised if the filter cannot go on
  // Exit with the command even if tasks it left still run under the filter
  // (their trapped calls then fail with ENOSYS); otherwise those are served
  // on by a detached process. Implied as PID 1.
  bool exit_with_command = false;
  std::vector<std::string> command;
  AttachRequest attach;  // when requested(), command is empty
};

}  // namespace keepalive
