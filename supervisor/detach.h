// SPDX-License-Identifier: Apache-2.0
// Serving the listener after the command has exited.
//
// A command that daemonizes (nginx with `daemon on`, pg_ctl start, sshd)
// exits as soon as its server runs in the background, still under the
// filter. Without a supervisor behind the listener every trapped call of
// that server would fail with ENOSYS, so the supervisor hands the listener
// to a process of its own that the caller does not wait for, and exits
// with the command's status.
#pragma once

#include <sys/types.h>

#include "supervisor/error.h"

namespace keepalive {

class Server;

// Whether tasks other than the reaped command still run under the filter
// whose notification fd is `listener`. The kernel counts a task as a user
// of the filter until the task is released (reaped), so this is only
// meaningful once the command has been reaped. An unreaped zombie still
// counts, for the moment it takes its parent to reap it.
bool filter_in_use(int listener);

// Forks the detached server, which runs server.serve() until the listener
// hangs up (the last task under the filter is gone), then exits 0. Returns
// its pid in the parent; the child never returns. The caller must be the
// only thread of the process (a fork copies only the calling thread).
//
// The detached server, as a daemon would:
//  - is the leader of a new session, without a controlling terminal, so
//    that the terminal's hang-up and job-control signals miss it;
//  - works in "/", so that it pins no mount;
//  - has stdin and stdout on /dev/null, and keeps stderr for its warnings
//    unless stderr is closed, a pipe or a FIFO (`$(keepalive-supervise --
//    daemon)` or `... 2>&1 | logger` would wait for its end): it then goes
//    to /dev/null too. A terminal, a file and a socket (the journal's)
//    stay;
//  - closes every inherited descriptor the supervisor only passed on to
//    the command (those without FD_CLOEXEC: the supervisor's own all
//    carry it), so that nobody waiting for their end waits for it;
//  - takes every signal's default action with nothing blocked, SIGPIPE
//    aside (ignored: a vanished reader of stderr must not end it), so
//    that SIGTERM ends it;
//  - reaps nothing: orphans it was reaping as a subreaper go to the next
//    subreaper or init when the supervisor exits.
Result<pid_t> serve_detached(Server& server);

}  // namespace keepalive
