// SPDX-License-Identifier: Apache-2.0
// The engine behind `keepalive-supervise -- CMD`: launches the target under
// the filter, serves its notifications, forwards signals, and returns the
// status to exit with.
#pragma once

#include <signal.h>

#include "supervisor/config.h"
#include "supervisor/exit_codes.h"

namespace keepalive {

// The signals forwarded to the target, as tini forwards them: every
// catchable one but SIGCHLD (ours to reap, as init) and the synchronous
// faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), which report
// the supervisor's own faults and keep their default action. SIGABRT is
// forwarded when sent from outside; abort() in the supervisor unblocks it
// and still ends the supervisor. The real-time signals are those glibc
// leaves to programs (SIGRTMIN..SIGRTMAX). The stop signals SIGTSTP,
// SIGTTIN and SIGTTOU are forwarded, then stop the supervisor too.
sigset_t forwarded_signals();

// Runs `config.command` to completion. Returns the target's exit status,
// 128 + signal number if it was killed, kExitNotFound/kExitNotExecutable
// when it could not be executed, kExitFailure (after one message) when the
// supervisor could not start it under the filter.
int run_supervisor(const Config& config);

}  // namespace keepalive
