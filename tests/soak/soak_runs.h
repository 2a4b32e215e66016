// SPDX-License-Identifier: Apache-2.0
// What the soak tests of keepalive-supervise and keepalive-agent share:
// running soak_target under them, reading its reports, and asking the
// agent what it serves.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {

// Why the supervisor cannot emulate socket() here (the only strategy that
// traps socket() itself), in its own words; empty when it can.
std::string why_no_emulation();

// The pid in soak_target's "started pid PID ..." or "running pid PID ..."
// line.
pid_t target_pid(const std::string& line);

// soak_target's arguments after `mode` ("loop", "spin", ...).
std::vector<std::string> soak_target(const std::string& mode,
                                     const std::vector<std::string>& rest);

// The argv that runs `soak_target loop PROCS THREADS REST...` under
// keepalive-supervise --strategy emulate.
std::vector<std::string> soak_loop(int procs, int threads,
                                   const std::vector<std::string>& rest);

// Fails the test unless loop's result line says that every socket() made
// a new TCP socket with SO_KEEPALIVE and left no fd behind.
void expect_every_socket_kept_alive(const Options& result);

// Waits (`bound` at most) until the agent serves no container: the last
// one's exit has reached it. "" then, else its last status.
std::string wait_until_idle(const std::string& control,
                            milliseconds bound = 5s);

}  // namespace keepalive::tests
