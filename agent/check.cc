// SPDX-License-Identifier: Apache-2.0
#include "agent/check.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/unique_fd.h"
#include "supervisor/syscalls.h"

namespace keepalive::agent {
namespace {

// Whether pidfd_getfd works on a process of another user, as a container's
// is: 0, or the errno it failed with.
int probe_getfd_on_another_user() {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return errno;
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    close(ready[0]);
    // Another identity than ours, as a container's process has; stays
    // alive until the parent is done. Only root can switch to one.
    uid_t other = geteuid() == 65534 ? 65533 : 65534;
    if (setresgid(other, other, other) != 0 ||
        setresuid(other, other, other) != 0) {
      _exit(1);
    }
    char byte = 0;
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte;
  bool changed = read(ready[0], &byte, 1) == 1;
  close(ready[0]);
  int result = EPERM;  // not root: could not even become another user
  if (changed) {
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    UniqueFd copy(pidfd.valid() ? sys::pidfd_getfd(pidfd.get(), 0, 0) : -1);
    result = copy.valid() ? 0 : errno;
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return result;
}

}  // namespace

AgentCheck run_agent_check() {
  AgentCheck check;
  std::string& out = check.text;
  utsname uts{};
  uname(&uts);
  out += std::string("kernel: ") + uts.release + "\n";

  bool notif = sys::seccomp_action_available(SECCOMP_RET_USER_NOTIF) == 0;
  int notif_errno = errno;
  out += std::string("seccomp user notification: ") +
         (notif ? "yes" : std::string("no (") + strerror(notif_errno) + ")") +
         "\n";

  int getfd = probe_getfd_on_another_user();
  out += "pidfd_getfd on another user's process: ";
  if (getfd == 0) {
    out += "permitted\n";
  } else {
    out += std::string("refused (") + strerror(getfd) +
           "): containers' sockets get no options and their calls go on "
           "untouched (run the agent as root, with CAP_SYS_PTRACE, outside "
           "any seccomp profile that refuses pidfd_getfd)\n";
  }

  UniqueFd thread_pidfd(sys::pidfd_open(getpid(), PIDFD_THREAD));
  out += std::string("PIDFD_THREAD (Linux 6.9+): ") +
         (thread_pidfd.valid()
              ? "yes\n"
              : "no (a container process that goes on after its main "
                "thread exited gets no options)\n");

  const char* notify = getenv("NOTIFY_SOCKET");
  out += std::string("fd store: ") +
         (notify != nullptr && *notify != '\0'
              ? "a service manager listens (NOTIFY_SOCKET): listeners "
                "survive restarts where FileDescriptorStoreMax= allows\n"
              : "none (not started by a service manager): when this agent "
                "stops, its containers' trapped calls fail with ENOSYS; "
                "SIGHUP re-executes it without loss\n");
  check.can_work = notif && getfd == 0;
  out += check.can_work ? "keepalive-agent can work here\n"
                        : "keepalive-agent cannot give containers options "
                          "here\n";
  return check;
}

}  // namespace keepalive::agent
