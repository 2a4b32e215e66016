// SPDX-License-Identifier: Apache-2.0
// Exit statuses of keepalive-supervise itself, as env(1), nohup(1) and
// chroot(1) use them; the command's own statuses pass through unchanged.
#pragma once

namespace keepalive {

inline constexpr int kExitUsage = 2;            // bad command line
inline constexpr int kExitFailure = 125;        // could not supervise
inline constexpr int kExitNotExecutable = 126;  // COMMAND found, not run
inline constexpr int kExitNotFound = 127;       // COMMAND not found

}  // namespace keepalive
