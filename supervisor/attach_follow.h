// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise --pid PID --follow (experimental): after the sockets
// PID already has get their options (attach.h), the supervisor's filter is
// put into the running process, so that the sockets it makes from then on
// get them when they connect or listen, as under `keepalive-supervise --
// COMMAND` with the continue strategy.
//
// One thread of the process is seized with ptrace and interrupted; it maps
// a page, the filter program is written there, and it makes
// prctl(PR_SET_NO_NEW_PRIVS) (unless the process has CAP_SYS_ADMIN) and
// seccomp(SET_MODE_FILTER, NEW_LISTENER | TSYNC | TSYNC_ESRCH), which puts
// the filter on every thread at once; the listener is copied out with
// pidfd_getfd, the process's own copy and the page are given back, every
// register restored and the thread let go (remote_call.h). The process
// then depends on the supervisor: its trapped calls fail with ENOSYS once
// nobody holds the listener. On SIGINT, SIGTERM or SIGHUP the supervisor
// therefore hands the listener to a background process of its own, which
// serves it until the process exits.
#pragma once

#include <sys/types.h>

#include <vector>

#include <linux/filter.h>

#include "common/unique_fd.h"
#include "supervisor/config.h"
#include "supervisor/error.h"

namespace keepalive {

// Installs `program` into process `pid` as described above and returns the
// listener. `no_new_privs`: set it in the process first. Errors say why:
// EBUSY (a listener is installed already), ESRCH (a thread could not take
// the filter, or the process is gone), EPERM (no ptrace access).
Result<UniqueFd> install_filter_into(pid_t pid,
                                     const std::vector<sock_filter>& program,
                                     bool no_new_privs);

// keepalive-supervise --pid PID --follow: returns the exit status.
int run_follow(const Config& config);

}  // namespace keepalive
