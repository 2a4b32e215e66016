// SPDX-License-Identifier: Apache-2.0
// Keeping the agent's descriptors across its own restarts. A container's
// seccomp listener lives only as long as some process holds it: if the
// agent's copy were the last, its exit would make the container's trapped
// calls fail with ENOSYS for good. So every listener (and a small record
// of whose it is) is also handed to the service manager's file descriptor
// store (sd_notify FDSTORE=1), which gives them back to the next agent
// (sd_listen_fds_with_names); and `keepalive-agent` re-executing itself
// passes them on in the same way. While no agent runs, the container's
// trapped calls wait in the kernel; none fails.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/error.h"

namespace keepalive::agent {

struct NamedFd {
  std::string name;
  UniqueFd fd;
};

// The names of the agent's fds in the store and across a re-exec: its
// listening socket, and for each container its listener and record
// (listener-TAG, record-TAG).
inline constexpr char kSocketName[] = "socket";
inline constexpr char kListenerPrefix[] = "listener-";
inline constexpr char kRecordPrefix[] = "record-";

// The variable that carries fds from one agent to the one it re-executes:
// "FD:NAME,FD:NAME,...".
inline constexpr char kPassedFdsVariable[] = "KEEPALIVE_AGENT_FDS";

// Marks `fd` close-on-exec; false if it is not an open fd. Asio opens and
// accepts sockets without it: the agent marks each, so that a re-exec
// passes on exactly the fds it names.
bool mark_cloexec(int fd);

// The fds an earlier agent left to this one: passed by a re-exec, or by
// the service manager (its file descriptor store and socket activation),
// with their names. Unsets the variables that named them, marks each fd
// close-on-exec, and skips what is not an open fd or is named twice.
// Call it before the process opens any fd of its own: a name for an fd
// that was never passed must not land on one of those.
std::vector<NamedFd> inherited_fds();

// Raises the soft limit on open fds to the hard one: each container costs
// the agent a few.
void raise_fd_limit();

// The service manager's side, through libsystemd: a no-op when the agent
// was not started by one (no NOTIFY_SOCKET).
class ServiceManager {
 public:
  ServiceManager();
  // Whether a service manager listens for notifications.
  bool present() const { return present_; }
  // Hands a copy of `fd` to the store under `name`. Fails if it could not
  // be sent, or if the store is known to be full (systemd 254 and later
  // give its size in $FDSTORE). systemd never acknowledges FDSTORE=1 and
  // silently drops what is beyond FileDescriptorStoreMax=, so without
  // $FDSTORE success means "sent", not "kept".
  Result<void> keep(int fd, const std::string& name);
  // Drops every fd stored under `name`.
  void forget(const std::string& name);
  // Counts `count` fds an earlier agent stored, given back at start.
  void count_inherited(size_t count) { stored_ += count; }
  // For status: where the listeners are kept, as far as is known.
  std::string describe() const;
  // READY=1, with a status line.
  void ready(const std::string& status);
  // STOPPING=1.
  void stopping();

 private:
  bool present_ = false;
  std::optional<size_t> capacity_;  // $FDSTORE
  size_t stored_ = 0;
};

// Replaces this process with `program` run with `argv`, passing `fds`
// (which stay open here if it fails) through kPassedFdsVariable. Returns
// only on failure.
SysError reexec(const std::string& program, char** argv,
                const std::vector<std::pair<int, std::string>>& fds);

}  // namespace keepalive::agent
