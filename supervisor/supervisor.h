// The engine behind `keepalive-supervise -- CMD`: launches the target under
// the filter, serves its notifications, forwards signals, and returns the
// status to exit with.
#pragma once

#include <signal.h>

#include "supervisor/config.h"

namespace keepalive {

// Exit statuses of the supervisor itself (the target's own pass through).
inline constexpr int kExitUsage = 2;         // bad command line
inline constexpr int kExitFailure = 125;     // could not supervise
inline constexpr int kExitNotExecutable = 126;
inline constexpr int kExitNotFound = 127;

// The signals forwarded to the target.
inline constexpr int kForwardedSignals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                                            SIGUSR1, SIGUSR2, SIGWINCH};

// Runs `config.command` to completion. Returns the target's exit status,
// 128 + signal number if it was killed, kExitNotFound/kExitNotExecutable
// when it could not be executed, kExitFailure (after one message) when the
// supervisor could not start it under the filter.
int run_supervisor(const Config& config);

}  // namespace keepalive
