// Facts about the task behind a notification, read from the kernel.
#pragma once

#include <sys/types.h>

#include <vector>

#include "common/unique_fd.h"
#include "supervisor/error.h"

namespace keepalive {

// Credentials and network namespace: what a socket created on someone's
// behalf inherits from its creator (sk_uid for owner matching and uid
// routing, the file's credentials, the namespace it lives in).
struct Identity {
  uid_t uid[4] = {};  // real, effective, saved, filesystem
  gid_t gid[4] = {};
  std::vector<gid_t> groups;
  ino_t netns = 0;  // identifies the network namespace (see target.cc)
  dev_t netns_dev = 0;

  bool operator==(const Identity&) const = default;
};

// The supervisor's own identity.
Result<Identity> own_identity();

// The identity of task `tid` (a thread id as seen in our pid namespace),
// from /proc. Callers must check afterwards that the notification is still
// valid, so that a recycled tid cannot fool them. Stores the thread group
// id in `tgid` when given.
Result<Identity> task_identity(pid_t tid, pid_t* tgid = nullptr);

// The thread group id of `tid`, from /proc/TID/status.
Result<pid_t> thread_group_of(pid_t tid);

struct TaskPidfd {
  UniqueFd fd;
  // The pidfd refers to `tid` itself (PIDFD_THREAD, or `tid` leads its
  // thread group): it becomes readable exactly when that task exits.
  bool of_task = false;
};

// A pidfd whose fd table is the one `tid` uses: PIDFD_THREAD where the
// kernel has it (6.9+), else the thread group leader's. ESRCH when the task
// is gone (pidfd_open's transient EINVAL for a dying task included).
Result<TaskPidfd> open_task_pidfd(pid_t tid);

}  // namespace keepalive
